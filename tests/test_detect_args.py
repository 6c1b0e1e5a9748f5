"""detect's small helpers refuse arguments that would end in a raw ZeroDivisionError."""

import pytest
import torch

from fcconv.course import detect
from fcconv.data import BACKGROUND


def test_iou_refuses_a_zero_area_box_and_still_computes_real_ones():
    with pytest.raises(ValueError, match=r"box a must be \(x0, y0, x1, y1\) with x1 >= x0"):
        detect.iou((5, 5, 4, 4), (5, 5, 4, 4))
    with pytest.raises(ValueError, match="box b must be"):
        detect.iou((0, 0, 3, 3), (2, 9, 5, 8))
    assert detect.iou((0, 0, 0, 0), (0, 0, 0, 0)) == 1.0            # one pixel each, the same one
    assert detect.iou((0, 0, 1, 1), (1, 1, 2, 2)) == pytest.approx(1 / 7)


@pytest.mark.parametrize("jump,error", [(0, ValueError), (-4, ValueError), (2.0, TypeError)])
def test_segment_refuses_a_jump_that_is_not_a_positive_int(jump, error):
    probs = torch.full((BACKGROUND + 1, 3, 3), 1 / (BACKGROUND + 1))
    with pytest.raises(error, match="jump must be"):
        detect.segment(probs, jump, (40, 40))
