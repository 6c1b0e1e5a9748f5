"""The face detector of notebook 05: data, geometry, dense = sliding, committed weights, explorer."""

import shutil
import statistics
import time

import numpy as np
import pytest
import torch

import fcconv
from fcconv import data
from fcconv.course import faces, weights
from fcconv.widgets.base import shown_png, shown_text


@pytest.fixture(scope="module")
def trained():
    net = faces.trained()
    return net, fcconv.convolutionalize(net, (1, faces.WINDOW, faces.WINDOW))


def test_lfw_split_holds_out_faces_and_non_faces():
    tx, ty, vx, vy = faces.lfw_split()
    assert tx.shape == (160, 25, 25) and vx.shape == (40, 25, 25)
    assert (ty.sum(), vy.sum()) == (80, 20)
    every = {p.tobytes() for p in np.concatenate([tx, vx])}
    assert len(every) == 200                                   # no patch in both halves


def test_grey_photo_and_resize():
    g = data.grey_photo("coffee")
    assert g.shape == (400, 600) and g.dtype == np.float32 and 0 <= g.min() and g.max() <= 1
    assert data.grey_photo("horse").max() == 1.0              # a bool image becomes 0/1
    small, (sy, sx) = faces.resize(g, 100)
    assert small.shape == (1, 1, 100, 150) and (sy, sx) == (0.25, 0.25)
    with pytest.raises(ValueError, match="no photo 'nope'"):
        data.grey_photo("nope")


def test_dense_pass_equals_sliding_windows_in_float64():
    net = faces.face_net(3).double().eval()
    fcn = fcconv.convolutionalize(net, (1, 25, 25))
    rf = fcconv.receptive_field(fcn, (1, 61, 61))
    assert (rf.size, rf.jump, rf.start) == (25, 4, 0)                # window = field, no padding
    image = torch.rand(1, 1, 61, 73, dtype=torch.float64)
    with torch.no_grad():
        dense, crops = fcn(image), fcconv.sliding_windows(net, image, 25, faces.JUMP)
    assert dense.shape == crops.shape == (1, 2, 10, 13)
    assert (dense - crops).abs().max().item() < 1e-12


def test_cell_box_maps_a_cell_back_to_the_photo():
    assert faces.cell_box(2, 3, 4, 25, 1.0) == (12, 8, 36, 32)         # scale 1: the window itself
    assert faces.cell_box(2, 3, 4, 25, 0.5) == (24, 16, 73, 65)        # half size: twice as far
    assert faces.cell_box(1, 1, 4, 25, (0.25, 0.5)) == (8, 16, 57, 115)
    # a bright square in the photo lands in the cell whose box holds it
    photo = np.zeros((200, 300), np.float32)
    photo[120:160, 80:120] = 1
    small, scale = faces.resize(photo, 100)
    r, c = divmod(int(small[0, 0].argmax()), small.shape[-1])
    x0, y0, x1, y1 = faces.cell_box(r // 4, c // 4, 4, 25, scale)
    assert x0 <= 80 + 20 <= x1 and y0 <= 120 + 20 <= y1
    with pytest.raises(ValueError, match="scale must be positive"):
        faces.cell_box(0, 0, 4, 25, 0)


def test_committed_weights_match_their_record(trained):
    net, _ = trained
    made = weights.record()["face_net"]
    _, _, vx, vy = faces.lfw_split(seed=made["seed"])
    assert faces.accuracy(net, vx, vy) == made["held_out_accuracy"] >= 0.95
    assert made["sha256"] == weights.sha256(weights.FOLDER / "face_net.pt")


def test_made_on_says_a_busy_machine_in_words_not_a_load_figure():
    busy = {"machine": "CPU X, 2 cores, load average 14.1, one torch thread, torch 2"}
    idle = {"machine": "CPU X, 2 cores, load average 0.3, one torch thread, torch 2"}
    assert weights.made_on(busy) == ("CPU X, 2 cores, one torch thread, torch 2 (busy with other "
                                     "work at the time: the time is an upper bound)")
    assert weights.made_on(idle) == "CPU X, 2 cores, one torch thread, torch 2"
    assert weights.made_on({"machine": "CPU Y, 4 cores"}) == "CPU Y, 4 cores"   # no load recorded


def test_a_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(weights.FOLDER, tmp_path / "trained")
    monkeypatch.setattr(weights, "FOLDER", tmp_path / "trained")
    monkeypatch.setattr(weights, "RECORD", tmp_path / "trained" / "weights.json")
    weights.load(faces.face_net(), "face_net")                        # intact: loads
    path = tmp_path / "trained" / "face_net.pt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF                                        # one byte flipped
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="does not match the recorded"):
        weights.load(faces.face_net(), "face_net")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="make weights"):
        weights.load(faces.face_net(), "face_net")


def test_detector_finds_the_face_region_and_refuses_a_bad_threshold(trained):
    _, fcn = trained
    levels = faces.pyramid(fcn, data.grey_photo(faces.TEST_PHOTO))
    assert [lv.side for lv in levels] == list(faces.SIDES)
    dets = faces.detections(levels, 0.5)
    assert dets == sorted(dets, key=lambda d: -d[5])
    assert max(faces.face_iou(d) for d in dets) >= 0.3              # a window near the face
    best, k = faces.best_window(levels)
    assert best[5] == pytest.approx(levels[k].probs.max().item())
    with pytest.raises(ValueError, match="between 0 and 1"):
        faces.detections(levels, 1.5)


def test_face_explorer_moves_the_window_and_answers_fast(trained):
    from fcconv.widgets.score_maps import FaceMapExplorer, cell_view

    _, fcn = trained
    image = data.grey_photo(faces.TEST_PHOTO)
    ex = FaceMapExplorer(fcn, image, side=94)
    lv = ex.level(94)
    assert (ex.row.max, ex.col.max) == (lv.probs.shape[0] - 1, lv.probs.shape[1] - 1)
    before = shown_png(ex.out)
    ex.col.value = 2
    assert shown_png(ex.out) != before and "Cell (0, 2)" in shown_text(ex.text)
    v = cell_view(lv, (3, 2))
    assert v["box"] == faces.cell_box(3, 2, 4, 25, lv.scale) and v["p"] == float(lv.probs[3, 2])
    ex.col.value = ex.col.max
    ex.side.value = 60                                               # smaller map: sliders shrink
    assert ex.col.max == ex.level(60).probs.shape[1] - 1 and "Traceback" not in shown_text(ex.text)
    times = []
    for k in range(6):                                               # every setting seen once
        ex.side.value = (94, 60)[k % 2]
        start = time.perf_counter()
        ex.row.value = k
        times.append(time.perf_counter() - start)
    print(f"face explorer: median {1e3 * statistics.median(times):.0f} ms per cell move")


# whole held-out patches a retrain may lose on another CPU: the seeds' spread (1) plus one
RETRAIN_SLACK_PATCHES = 2


@pytest.mark.slow
def test_retraining_from_the_seed_reaches_the_committed_accuracy():
    made = weights.record()["face_net"]
    model, _, facts = faces.train(seed=made["seed"])
    # One thread, one seed: the same weights on the same CPU. Another CPU (AMD vs Intel) rounds
    # float sums differently, training diverges, and the result is in effect another seed: seeds
    # 0-2 gave 40, 39, 40 of 40 held-out patches (benchmarks/RESULTS.md), an AMD EPYC 39 from seed
    # 0. So "reproduces" means: as good as the seeds are, counted in whole patches, never floats.
    n = made["held_out_patches"]
    committed, retrained = round(made["held_out_accuracy"] * n), round(facts["held_out_accuracy"] * n)
    assert retrained >= committed - RETRAIN_SLACK_PATCHES, f"{retrained} of {n} vs {committed} committed"
    assert facts["hard_negatives_per_round"][-1] <= facts["hard_negatives_per_round"][0]
