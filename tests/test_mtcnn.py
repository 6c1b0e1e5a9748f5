"""MTCNN with facenet-pytorch's trained weights: the fetch at set-up (and how it fails), the
cascade's geometry computed two ways, P-Net's dense map against its crops, the detections on
every bundled photo, and ``python -m fcconv faces``."""

import ast
import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcconv import data, models
from fcconv.course import faces, fetch, mtcnn, weights
from fcconv.formulas import score_map_side

ROOT = Path(__file__).resolve().parents[1]
FACE_FREE = faces.FACE_FREE_TRAIN + faces.FACE_FREE_HELD_OUT


def run_cli(*args, env=None):
    done = subprocess.run([sys.executable, "-m", "fcconv", "faces", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def grace_hopper() -> str:
    import matplotlib.cbook

    return str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


# --------------------------------------------------------------------------- fetch and load

def test_the_course_package_has_no_import_circle():
    """Each module of fcconv/course imports only modules below it, counting imports inside
    functions too: loading weights never needs training (weights once imported faces and
    detect, which import weights)."""
    package = ROOT / "fcconv" / "course"
    graph = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = name.split(".")[:len(name.split(".")) - node.level +
                                      (path.name == "__init__.py")]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if (ROOT / Path(*sub.split("."))).with_suffix(".py").exists()
                             else target)
        graph[name] = {d for d in deps if d.startswith("fcconv.course.")} - {name}

    def cycle_from(start, seen=()):
        for dep in graph.get(start, ()):
            if dep in seen:
                return [*seen, dep]
            found = cycle_from(dep, (*seen, dep))
            if found:
                return found
        return None

    assert "fcconv.course.faces" in graph["fcconv.course.mtcnn"]          # the walk sees imports
    cycles = [c for m in graph if (c := cycle_from(m, (m,)))]
    assert not cycles, f"import circle: {' -> '.join(cycles[0])}"


def test_committed_record_matches_the_nets_keys():
    rec = weights.pretrained_record()
    assert rec["requirement"] == "facenet-pytorch==2.6.0" and rec["licence"] == "MIT"
    for name, net in (("pnet", models.PNet()), ("rnet", models.RNet()), ("onet", models.ONet())):
        loaded = weights.load_pretrained(net, name)
        assert not loaded.training
        state = torch.load(weights.pretrained_path(name), weights_only=True)
        assert set(state) == set(net.state_dict())
        assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_a_missing_or_damaged_file_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("FCCONV_CACHE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"pnet\.pt is missing.*fcconv\.course\.fetch"):
        weights.load_pretrained(models.PNet(), "pnet")
    path = weights.pretrained_path("rnet")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")   # not the weights
    with pytest.raises(FileNotFoundError, match=r"not the committed .*damaged.*make venv"):
        weights.load_pretrained(models.RNet(), "rnet")
    with pytest.raises(ValueError, match="no pretrained net 'qnet'"):
        weights.pretrained_path("qnet")


def test_fetch_failures_are_one_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FCCONV_CACHE_DIR", str(tmp_path / "cache"))
    no_network = [sys.executable, "-c", "import sys; sys.exit('ERROR: No matching distribution')"]
    with pytest.raises(fetch.FetchError, match="pip could not download facenet-pytorch==2.6.0 "
                                               r"from the package index \(exit 1: ERROR: No match"):
        fetch.fetch(pip=no_network)
    fake = tmp_path / weights.pretrained_record()["wheel"]["name"]
    with zipfile.ZipFile(fake, "w") as z:                              # right name, wrong bytes
        z.writestr("facenet_pytorch/data/pnet.pt", b"not a net")
    assert fetch.main(["--wheel", str(fake)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MTCNN's weights were not fetched: ") and "--wheel FILE" in err
    assert "is not the committed" in err and "Traceback" not in err
    assert fetch.main(["--wheel", str(tmp_path / "none.whl")]) == 1
    assert "no wheel at" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "mtcnn" / "pnet.pt").exists()      # nothing half-written


def test_fetch_from_the_index_then_nothing_to_do(tmp_path, monkeypatch):
    """What ``make lab`` runs, in an empty cache: the wheel by name, three checked files; a second
    run finds them intact and needs no pip at all (a failing pip is not called)."""
    env = {**os.environ, "FCCONV_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "fcconv.course.fetch"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    for name, entry in weights.pretrained_record()["files"].items():
        got = hashlib.sha256((tmp_path / "mtcnn" / f"{name}.pt").read_bytes()).hexdigest()
        assert got == entry["sha256"]
    assert sorted(p.name for p in (tmp_path / "mtcnn").iterdir()) == ["onet.pt", "pnet.pt", "rnet.pt"]
    monkeypatch.setenv("FCCONV_CACHE_DIR", str(tmp_path))
    assert fetch.fetch(pip=["false"])[0].parent == tmp_path / "mtcnn"


# --------------------------------------------------------------------------- geometry

def test_pyramid_scales_stop_where_the_window_no_longer_fits():
    s = mtcnn.scales(512, 600)
    assert s[0] == pytest.approx(12 / 20) and all(b / a == pytest.approx(0.709)
                                                   for a, b in zip(s, s[1:]))
    assert 512 * s[-1] >= 12 > 512 * s[-1] * 0.709
    # counted the other way: the largest k with 512 * 0.6 * 0.709**k >= 12
    assert len(s) == math.floor(math.log(12 / (512 * 0.6)) / math.log(0.709)) + 1
    assert mtcnn.scales(20, 20) == [0.6] and mtcnn.scales(19, 40) == []
    with pytest.raises(ValueError, match="at least P-Net's window"):
        mtcnn.scales(100, 100, min_face=8)


def test_square_regress_and_crops():
    assert mtcnn.square((10, 20, 19, 39)) == (5, 20, 24, 39)             # 10x20 -> 20x20, same centre
    assert mtcnn.square((0, 0, 9, 9)) == (0, 0, 9, 9)
    assert mtcnn.regress((10, 20, 19, 39), (0.1, -0.1, 0.2, 0.0)) == (11, 18, 21, 39)
    inside_out = (10, 20, 19, 39, 1, 0.9, np.array([0.9, 0.0, -0.9, 0.0]))   # x1 < x0 after it
    kept = (10, 20, 19, 39, 1, 0.8, np.zeros(4))
    assert mtcnn.regressed([inside_out, kept]) == [(10, 20, 19, 39, 1, 0.8)]
    pixels = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2 * 3, 4, 5)[:3][None]
    c = mtcnn.crops(pixels, [(1, 0, 3, 2), (-1, -1, 1, 1)], 3)
    assert torch.equal(c[0], pixels[0, :, 0:3, 1:4])                     # inside: the pixels
    assert torch.equal(c[1, :, 0], torch.zeros(3, 3))                    # outside: zeros
    assert torch.equal(c[1, :, 1:, 1:], pixels[0, :, 0:2, 0:2])
    # any square box, inside, across an edge or wholly outside: its pixels where the photo is, zeros
    # elsewhere, counted against a zero-padded copy of the photo
    padded = torch.nn.functional.pad(pixels, (20, 20, 20, 20))
    for box in [(-3, 1, 2, 6), (3, 2, 8, 7), (6, 5, 9, 8), (-9, -9, -6, -6), (1, -2, 4, 1)]:
        x0, y0, x1, y1 = box
        want = padded[0, :, y0 + 20:y1 + 21, x0 + 20:x1 + 21]
        assert torch.equal(mtcnn.crops(pixels, [box], want.shape[-1])[0], want), box


def test_pnet_dense_map_equals_pnet_on_every_12x12_crop_in_float64():
    """P-Net is a 12x12 classifier that is already fully convolutional: its map over an image
    equals P-Net on each 12x12 crop at stride 2, to float64 rounding. Where the image minus 2 is
    odd, its ceil_mode pool adds one more row (column) from a partial window: a cell whose window
    would reach past the image, which no crop has."""
    pnet = weights.load_pretrained(models.PNet(), "pnet").double()
    x = mtcnn.normalize(mtcnn.as_tensor(data.rgb_photo("astronaut"))).double()[:, :, 180:217, 190:224]
    with torch.no_grad():
        probs, offsets = pnet(x)
        rows, cols = (score_map_side(n, 12, 2) for n in x.shape[2:])   # 13 x 12
        crops = torch.stack([x[0, :, 2 * r:2 * r + 12, 2 * c:2 * c + 12]
                             for r in range(rows) for c in range(cols)])
        p_crop, o_crop = pnet(crops)
    assert probs.shape[1:] == (rows + (x.shape[2] - 2) % 2, cols + (x.shape[3] - 2) % 2) == (14, 12)
    assert (probs[0, :rows, :cols].flatten() - p_crop.flatten()).abs().max() < 1e-12
    assert (offsets[0, :, :rows, :cols] - o_crop[..., 0, 0].T.reshape(4, rows, cols)).abs().max() < 1e-12


def test_a_proposal_is_the_cell_window_in_the_photo():
    lv = mtcnn.Level(0.5, (0.5, 0.25), (18, 22), torch.zeros(4, 6), torch.zeros(4, 4, 6))
    lv.probs[1, 3] = 0.9
    (d,) = mtcnn.proposals(lv)
    assert d[:6] == (*faces.cell_box(1, 3, 2, 12, (0.5, 0.25)), 1, pytest.approx(0.9))
    assert d[:4] == (24, 4, 71, 27)                 # x = 6/0.25 .. 18/0.25 - 1, y = 2/0.5 .. 14/0.5 - 1


def test_onets_last_nms_drops_a_box_nested_in_a_better_one_as_the_reference_does():
    """O-Net's NMS measures overlap over the smaller box ('Min' in the authors' MATLAB code and
    facenet-pytorch), counted here by hand: a 10x10 box inside a 30x30 one overlaps it by
    100/100 = 1 over the smaller box but by 100/900 = 0.11 over the union."""
    from fcconv.course.detect import ious, nms

    big, small = (0, 0, 29, 29, 1, 0.99), (10, 10, 19, 19, 1, 0.9)
    assert ious(big[:4], [small[:4]], by="smaller")[0] == 1.0
    assert ious(big[:4], [small[:4]])[0] == pytest.approx(100 / 900)
    assert nms([small, big], mtcnn.NMS_STAGE) == [big, small]                # by the union: both kept
    assert nms([small, big], mtcnn.NMS_STAGE, by="smaller") == [big]
    offsets = np.zeros((2, 4))
    scored = [(*big[:5], big[5], offsets[0]), (*small[:5], small[5], offsets[1])]
    assert [d[:4] for d in mtcnn.finish(scored, 0.7)] == [big[:4]]
    with pytest.raises(ValueError, match='by must be "union" or "smaller"'):
        ious(big[:4], [small[:4]], by="min")


def test_box_labels_stay_in_the_photo_and_never_cover_each_other():
    photo = np.full((120, 160, 3), 255, np.uint8)
    off = np.array(mtcnn.annotated(photo, [(-20, 60, 40, 110, 1, 0.9)]))  # starts off the photo
    on = np.array(mtcnn.annotated(photo, [(0, 60, 60, 110, 1, 0.9)]))
    assert (off[:58] == on[:58]).all()              # its label, whole, at x = 0 like this one's
    best, next_ = (10, 60, 60, 110, 1, 0.9), (12, 60, 62, 110, 1, 0.8)   # labels at the same spot
    both = np.array(mtcnn.annotated(photo, [best, next_]))
    alone = np.array(mtcnn.annotated(photo, [best]))
    assert (both[:58] == alone[:58]).all()          # above the boxes: only the best box's label


# --------------------------------------------------------------------------- detections

@pytest.fixture(scope="module")
def cascades():
    names = (*faces.FACE_BOXES, *FACE_FREE)
    return {n: mtcnn.detect(data.rgb_photo(n)) for n in names}


def test_the_top_detection_is_the_marked_face(cascades):
    for name in faces.FACE_BOXES:
        found = cascades[name].faces
        assert found, f"no face found in {name}"
        assert mtcnn.face_iou(name, found) >= 0.5, (name, found[:3], faces.FACE_BOXES[name])
        assert all(p > mtcnn.THRESHOLDS[2] for *_, p in found)
        assert [d[5] for d in found] == sorted((d[5] for d in found), reverse=True)


def test_face_free_photos_give_no_face_on_at_least_16_of_18(cascades):
    assert len(FACE_FREE) == 18
    false = {n: len(cascades[n].faces) for n in FACE_FREE}
    assert sum(v == 0 for v in false.values()) >= 16, false


def test_each_stage_keeps_fewer_boxes(cascades):
    c = cascades["astronaut"]
    assert len(c.levels) == len(mtcnn.scales(512, 512))
    assert len(c.proposals) > len(c.refined) >= len(c.faces) >= 1
    assert all(b[2] - b[0] == b[3] - b[1] for b in c.proposals + c.refined)   # squared


def test_the_channels_last_layout_changes_no_detection(cascades, monkeypatch):
    """The cascade feeds its nets channels-last tensors (faster on CPU): run again with the
    plain (N, C, H, W) layout, every stage keeps the same boxes, with probabilities equal to
    float32 rounding."""
    monkeypatch.setattr(mtcnn, "channels_last", lambda x: x.contiguous())
    for name in ("astronaut", "grace_hopper", "gravel", "hubble_deep_field"):
        plain, fast = mtcnn.detect(data.rgb_photo(name)), cascades[name]
        assert mtcnn.channels_last(torch.zeros(1, 3, 4, 4)).is_contiguous()   # the patch holds
        for stage in ("proposals", "refined", "faces"):
            a, b = getattr(plain, stage), getattr(fast, stage)
            assert [d[:4] for d in a] == [d[:4] for d in b], (name, stage)
            assert all(abs(p[5] - q[5]) < 1e-5 for p, q in zip(a, b)), (name, stage)
        for lv_a, lv_b in zip(plain.levels, fast.levels):
            assert torch.allclose(lv_a.probs, lv_b.probs, atol=1e-5)


def test_detect_refuses_a_photo_that_is_not_rgb_uint8():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8; got \(4, 4\) uint8"):
        mtcnn.detect(np.zeros((4, 4), np.uint8))


# --------------------------------------------------------------------------- the command line

def test_cli_prints_one_line_per_face_and_json(tmp_path):
    done = run_cli(grace_hopper(), "--out", tmp_path / "boxes.png")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    x0, y0, x1, y1, p = lines[0].split()
    expected = mtcnn.detect(data.rgb_photo("grace_hopper")).faces
    assert len(lines) == len(expected) and (int(x0), int(y0), int(x1), int(y1)) == expected[0][:4]
    assert float(p) == pytest.approx(expected[0][5], abs=1e-4)
    assert "1 face in" in done.stderr
    from PIL import Image

    with Image.open(tmp_path / "boxes.png") as im:
        assert im.format == "PNG" and im.size == (512, 600)
    as_json = json.loads(run_cli(grace_hopper(), "--json").stdout)
    assert as_json == mtcnn.as_records(expected)
    assert set(as_json[0]) == {"x0", "y0", "x1", "y1", "probability"}


def test_cli_on_a_photo_without_faces_prints_nothing(tmp_path):
    from PIL import Image

    Image.fromarray(data.rgb_photo("brick")).save(tmp_path / "brick.png")
    done = run_cli(tmp_path / "brick.png", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == [] and "0 faces in" in done.stderr


def faces_command(capsys, *args) -> tuple[int, str, str]:
    """``python -m fcconv faces ARGS`` in this process (the entry point the command runs)."""
    from fcconv.__main__ import main

    try:
        rc = main(["faces", *map(str, args)])
    except SystemExit as stop:                     # argparse refusing an argument
        rc = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "missing.jpg", "no such file"),
    (lambda d: d, "is a folder, not an image file"),
    (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png", "is not an image Pillow"),
    (lambda d: (d / "cut.jpg").write_bytes(Path(grace_hopper()).read_bytes()[:4000]) and d / "cut.jpg",
     "could not be decoded as an image"),
])
def test_cli_says_what_is_wrong_with_a_bad_photo(tmp_path, capsys, make, says):
    rc, out, err = faces_command(capsys, make(tmp_path))
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and says in err and len(err.splitlines()) == 1


def test_cli_without_the_weights_says_how_to_fetch_them(tmp_path):
    done = run_cli(grace_hopper(), env={**os.environ, "FCCONV_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 2 and done.stdout == ""
    assert "pnet.pt is missing" in done.stderr and "python -m fcconv.course.fetch" in done.stderr


def test_cli_refuses_an_unwritable_out_and_a_tiny_min_face(tmp_path, capsys):
    rc, _, err = faces_command(capsys, grace_hopper(), "--out", tmp_path / "no" / "such" / "dir.png")
    assert rc == 2 and "cannot write" in err
    for bad in ("0", "-5", "nan", "inf", "big"):
        rc, _, err = faces_command(capsys, grace_hopper(), "--min-face", bad)
        assert rc == 2 and "--min-face: must be a" in err and "number of pixels" in err
    rc, _, err = faces_command(capsys, grace_hopper(), "--min-face", "8")
    assert rc == 2 and "at least P-Net's window, 12 px" in err


# --------------------------------------------------------------------------- the explorer

def test_stage_view_agrees_with_the_cascade():
    from fcconv.widgets.mtcnn import Scored, stage_view

    s = Scored.of("camera")
    c = mtcnn.detect(s.image)                              # run again: the same numbers
    final = stage_view(s, "O-Net", 0, mtcnn.THRESHOLDS[2])
    assert final["boxes"] == c.faces and final["top_iou"] == mtcnn.face_iou("camera", c.faces)
    refined = stage_view(s, "R-Net", 0, mtcnn.THRESHOLDS[1])["boxes"]     # before regression
    assert [d[5] for d in refined] == [d[5] for d in c.refined]
    lv = s.levels[3]
    v = stage_view(s, "P-Net", 3, 0.6)
    assert v["looked"] == lv.probs.numel() and v["above"] == int((lv.probs > 0.6).sum())
    assert v["boxes"] == [d[:6] for d in mtcnn.proposals(lv, 0.6)]
    # a lower threshold keeps at least as many boxes at every stage
    for stage in ("P-Net", "R-Net", "O-Net"):
        assert stage_view(s, stage, 3, 0.3)["above"] >= stage_view(s, stage, 3, 0.9)["above"]
    with pytest.raises(ValueError, match="stage must be one of"):
        stage_view(s, "Q-Net", 0, 0.5)
    with pytest.raises(ValueError, match="one of the 10 pyramid levels; got 10"):
        stage_view(s, "P-Net", 10, 0.5)


def test_cascade_explorer_redraws_and_never_shows_a_traceback():
    from fcconv.widgets.base import shown_alt, shown_png, shown_text
    from fcconv.widgets.mtcnn import CascadeExplorer

    ex = CascadeExplorer(photos=("astronaut", "grass"))
    seen = {shown_png(ex.out)}
    assert "P-Net at window side 20 px" in shown_text(ex.text)
    ex.level.value = 5
    assert "window side 112 px" in shown_text(ex.text) and "0.75" in shown_text(ex.text)
    seen.add(shown_png(ex.out))
    ex.stage.value = "O-Net"
    assert ex.threshold.value == 0.7 and "<b>1 face</b>" in shown_text(ex.text)
    assert "IoU with the marked face: 0.77" in shown_text(ex.text)
    seen.add(shown_png(ex.out))
    ex.threshold.value = 0.99
    ex.photo.value = "grass"
    assert "<b>0 faces</b>" in shown_text(ex.text) and "no face in this photo" in shown_text(ex.text)
    assert "0 boxes O-Net keeps" in shown_alt(ex.out)
    seen.add(shown_png(ex.out))
    assert len(seen) == 4 and None not in seen
    ex._scored["grass"].cascade.levels = []                # a broken state: a message, no traceback
    ex.update()
    assert shown_png(ex.out) is None and "pyramid levels" in shown_text(ex.text)


def test_cascade_explorer_starts_at_a_scale_and_keeps_it_for_the_next_photo():
    from fcconv.widgets.base import shown_text
    from fcconv.widgets.mtcnn import CascadeExplorer

    ex = CascadeExplorer(photos=("astronaut", "camera"), level=5)
    assert ex.level.value == 5 and "window side 112 px" in shown_text(ex.text)
    ex.photo.value = "camera"
    assert ex.level.value == 5 and "camera: P-Net at window side 112 px" in shown_text(ex.text)


# --------------------------------------------------------------------------- dense vs crops

def test_dense_and_crop_costs_count_what_they_run():
    """R-Net densely over the pyramid scores exactly the 24x24 windows, 4 px apart, that fit in
    each level (counted with the course's formula); the crops cost boxes x R-Net's MACs."""
    import warnings

    from fcconv import convolutionalize, trace
    from fcconv.fcn import ApproximateWarning

    _, rnet, _ = mtcnn.nets()
    with pytest.raises(ValueError, match="ceil_mode=True"):
        convolutionalize(rnet, (3, 24, 24))                           # refused unless asked
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximateWarning)
        fcn = convolutionalize(rnet, (3, 24, 24), exact=False)
    image = data.rgb_photo("camera")
    c = mtcnn.detect(image)
    pixels = mtcnn.as_tensor(image)
    d = mtcnn.dense_cost(fcn, pixels, c.levels, repeats=1)
    fits = [lv for lv in c.levels if min(lv.size) >= 24]
    assert d["levels"] == len(fits) and d["windows"] == sum(
        score_map_side(h, 24, 4) * score_map_side(w, 24, 4) for h, w in (lv.size for lv in fits))
    k = mtcnn.crop_cost(rnet, pixels, c.proposals, 24, repeats=1)
    assert k["boxes"] == len(c.proposals)
    assert k["macs"] == len(c.proposals) * trace(rnet, (3, 24, 24)).total_macs
    assert 0 < k["cutting"] < k["seconds"]


def test_cascade_explorer_without_the_weights_says_how_to_fetch_them(tmp_path, monkeypatch):
    from fcconv.widgets.base import shown_png, shown_text
    from fcconv.widgets.mtcnn import CascadeExplorer

    monkeypatch.setenv("FCCONV_CACHE_DIR", str(tmp_path))
    mtcnn.nets.cache_clear()
    try:
        ex = CascadeExplorer(photos=("camera",))
    finally:
        mtcnn.nets.cache_clear()
    assert shown_png(ex.out) is None and "fcconv.course.fetch" in shown_text(ex.text)


# ------------------------------------------------- photos of every mode, size limits, --out

def astronaut_grey() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(data.rgb_photo("astronaut")).convert("L"))


@pytest.mark.parametrize("save", [
    lambda g, p: Image.fromarray(g.astype(np.uint16) * 257).save(p.with_suffix(".png")),
    lambda g, p: Image.fromarray(g.astype(np.float32) / 255).save(p.with_suffix(".tif")),
    lambda g, p: Image.fromarray(g).convert("P").save(p.with_suffix(".png")),
    lambda g, p: Image.fromarray(g).convert("LA").save(p.with_suffix(".png")),
], ids=["16-bit", "float 0..1", "palette", "grey+alpha"])
def test_read_photo_scales_every_mode_to_the_8_bit_picture(tmp_path, save):
    """Two ways: the 8-bit grey picture, and the same picture saved in another mode and read
    back: the same (H, W, 3) uint8 pixels (Pillow's own convert clips 16-bit to white and
    float 0..1 to black)."""
    grey = astronaut_grey()
    save(grey, tmp_path / "photo")
    path = next(tmp_path.iterdir())
    got = mtcnn.read_photo(path)
    assert got.dtype == np.uint8 and got.shape == (*grey.shape, 3)
    assert np.array_equal(got, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("save, says", [
    (lambda p: Image.fromarray(np.full((30, 40), 99.5, np.float32)).save(p), "from 99.5 to 99.5"),
    (lambda p: Image.fromarray(np.zeros((30, 40), np.uint8)).convert("I").save(p), "32-bit"),
])
def test_cli_refuses_pixels_whose_range_it_cannot_tell(tmp_path, capsys, save, says):
    save(tmp_path / "odd.tif")
    rc, out, err = faces_command(capsys, tmp_path / "odd.tif")
    assert rc == 2 and out == "" and err.startswith("error: ") and says in err
    assert len(err.splitlines()) == 1


def png_header(path, width: int, height: int) -> Path:
    """A PNG with a header and no pixel data: Pillow opens it lazily, reading only the size
    (a test of the size limit that allocates nothing)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [(12000, 12000), (15000, 15000),
                                           (mtcnn.MAX_PIXELS + 1, 1)])
def test_cli_refuses_a_photo_over_the_pixel_limit_before_decoding_it(tmp_path, capsys, width,
                                                                      height):
    rc, out, err = faces_command(capsys, png_header(tmp_path / "big.png", width, height))
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("error: ") and f"{mtcnn.MAX_PIXELS:,}" in err
    with pytest.raises(ValueError, match="scale it down"):
        mtcnn.read_photo(png_header(tmp_path / "edge.png", mtcnn.MAX_PIXELS // 4000 + 1, 4000))
    with pytest.raises(ValueError, match="could not be decoded"):   # the limit let it through
        mtcnn.read_photo(png_header(tmp_path / "fits.png", mtcnn.MAX_PIXELS // 4000, 4000))


def test_detect_refuses_an_array_over_the_pixel_limit_before_the_pyramid():
    """A broadcast view: 40 megapixels that take no memory, refused before any copy."""
    big = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (4001, mtcnn.MAX_PIXELS // 4000, 3))
    with pytest.raises(ValueError, match=f"more than the {mtcnn.MAX_PIXELS:,}"):
        mtcnn.detect(big)


def test_cli_refuses_an_out_that_is_not_png_or_is_the_photo(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(data.rgb_photo("astronaut")[:64, :64]).save(photo)
    before = photo.read_bytes()
    for out, says in ((tmp_path / "boxes.jpg", "must end in .png"),
                      (photo, "is the photo itself"),
                      (tmp_path / "." / "photo.png", "is the photo itself")):
        rc, _, err = faces_command(capsys, photo, "--out", out)
        assert rc == 2 and says in err and len(err.splitlines()) == 1
    assert photo.read_bytes() == before and not (tmp_path / "boxes.jpg").exists()


def test_a_photo_explorer_sends_a_jpeg_a_fraction_of_its_png():
    # two ways to send the same picture: what the explorer sends, and the PNG of its pixels
    import io

    from PIL import Image

    from fcconv.widgets.base import shown_png
    from fcconv.widgets.mtcnn import CascadeExplorer

    ex = CascadeExplorer(photos=("astronaut",))
    sent = shown_png(ex.out)
    img = Image.open(io.BytesIO(sent))
    assert img.format == "JPEG" and img.size == ex.scored("astronaut").image.shape[1::-1]
    png = io.BytesIO()
    img.save(png, format="PNG", compress_level=1)
    assert 3 * len(sent) < len(png.getvalue()), (len(sent), len(png.getvalue()))
