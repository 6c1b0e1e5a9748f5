"""The course's running examples, built from scratch (no download, random weights).

Each builder returns an ``nn.Module`` whose structure (and so whose ``state_dict`` keys) matches
the well-known definition, so that real weights could be loaded into it where a learner has them.
``MODELS`` maps a short name to ``(builder, training input shape)``.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision's VGG16 configuration: numbers are conv widths, "M" a 2x2 max pool.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"]


class VGG(nn.Module):
    """VGG16 exactly as torchvision defines it: features -> avgpool(7x7) -> flatten -> classifier.

    x: (N, 3, 224, 224) -> (N, num_classes)
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        _init_like_torchvision(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class AlexNet(nn.Module):
    """AlexNet as torchvision defines it: fc6 sees 256x6x6 = 9216 inputs.

    x: (N, 3, 224, 224) -> (N, num_classes)
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _init_like_torchvision(model: nn.Module) -> None:
    """torchvision's VGG init: Kaiming for convs, N(0, 0.01) for linears, zero biases."""
    if any(p.is_meta for p in model.parameters()):
        return  # shapes only: no numbers to fill
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def vgg16(num_classes: int = 1000, device: str | torch.device | None = None) -> nn.Module:
    """VGG16 (torchvision's structure, 138,357,544 parameters), random weights.

    x: (N, 3, 224, 224) -> (N, num_classes). ``device="meta"`` builds it instantly, for shapes only.
    """
    with torch.device(device or "cpu"):
        return VGG(num_classes)


def alexnet(num_classes: int = 1000, device: str | torch.device | None = None) -> nn.Module:
    """AlexNet (torchvision's structure, 61,100,840 parameters), random weights.

    x: (N, 3, 224, 224) -> (N, num_classes)
    """
    with torch.device(device or "cpu"):
        return AlexNet(num_classes)


def lenet5(num_classes: int = 10, device: str | torch.device | None = None) -> nn.Sequential:
    """LeNet-5 with ReLU and max pooling: 32x32x1 -> 5x5x16 -> 120 -> 84 -> classes.

    x: (N, 1, 32, 32) -> (N, num_classes). LeCun's C5 is a 5x5 conv on a 5x5 map: an FC layer.
    """
    with torch.device(device or "cpu"):
        return nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )


def tiny_vgg(num_classes: int = 10, device: str | torch.device | None = None) -> nn.Sequential:
    """CNN Explainer's Tiny VGG: unpadded 3x3 convs, 64x64x3 -> 13x13x10 -> classes.

    x: (N, 3, 64, 64) -> (N, num_classes). No zero padding, so its dense score map equals crops.
    """
    with torch.device(device or "cpu"):
        return nn.Sequential(
            nn.Conv2d(3, 10, 3), nn.ReLU(), nn.Conv2d(10, 10, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(10, 10, 3), nn.ReLU(), nn.Conv2d(10, 10, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(13 * 13 * 10, num_classes),
        )


def question234(num_classes: int = 1000, device: str | torch.device | None = None) -> nn.Sequential:
    """The classic question's net: 234x234x1 -> 3 x [conv 7x7/32, maxpool 2] -> 24x24x32 -> FCs.

    x: (N, 1, 234, 234) -> (N, num_classes); FC 1024 -> FC 1024 -> FC num_classes.
    """
    with torch.device(device or "cpu"):
        blocks: list[nn.Module] = []
        channels = 1
        for _ in range(3):
            blocks += [nn.Conv2d(channels, 32, 7), nn.ReLU(), nn.MaxPool2d(2)]
            channels = 32
        return nn.Sequential(
            *blocks, nn.Flatten(),
            nn.Linear(24 * 24 * 32, 1024), nn.ReLU(),
            nn.Linear(1024, 1024), nn.ReLU(),
            nn.Linear(1024, num_classes),
        )



def dress_detector(device: str | torch.device | None = None) -> nn.Sequential:
    """The dress detector of notebook 06: VGG16's conv trunk, an FC with 4 units, one binary unit.

    x: (N, 3, 128, 64), 64 wide and 128 tall -> trunk (N, 512, 4, 2) -> (N, 1): the logit of
    "a dress". Layers 0-30 are VGG16's ``features``; 31 Flatten, 32 Linear(4096, 4), 33 ReLU,
    34 Linear(4, 1).
    """
    trunk = vgg16(device=device).features
    with torch.device(device or "cpu"):
        return nn.Sequential(*trunk, nn.Flatten(), nn.Linear(512 * 4 * 2, 4), nn.ReLU(),
                             nn.Linear(4, 1))


# MTCNN (Zhang, Zhang, Li, Qiao, IEEE SPL 2016): three face classifiers of growing size. The
# structure and the state-dict keys follow facenet-pytorch 2.6.0 (MIT), whose wheel carries the
# trained weights (fcconv.course.mtcnn loads them); the forward passes are written out here.
class PNet(nn.Module):
    """MTCNN's first stage: a 12x12 face classifier that is already fully convolutional.

    x: (N, 3, H, W), pixels (x - 127.5) / 128 -> (face probability (N, H', W'),
    box offsets (N, 4, H', W')); at 12x12, H' = W' = 1; cells 2 px apart.
    """

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)   # face / not face: an FC layer on 1x1x32, as a conv
        self.conv4_2 = nn.Conv2d(32, 4, 1)   # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """MTCNN's second stage: a 24x24 classifier with an FC head on a (W, H, C) flatten.

    x: (N, 3, 24, 24) -> (face probability (N,), box offsets (N, 4))
    """

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the weights came from TensorFlow (channels last), read column by column: (W, H, C)
        x = x.permute(0, 3, 2, 1).flatten(1)
        x = self.prelu4(self.dense4(x))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """MTCNN's third stage: a 48x48 classifier with an FC head on a (W, H, C) flatten.

    x: (N, 3, 48, 48) -> (face probability (N,), box offsets (N, 4), five landmarks (N, 10))
    """

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).flatten(1)   # (W, H, C), as in RNet
        x = self.prelu5(self.dense5(x))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def pnet(device: str | torch.device | None = None) -> PNet:
    """MTCNN's P-Net (6,632 parameters), random weights: x (N, 3, 12, 12) -> (N, 1, 1), (N, 4, 1, 1)."""
    with torch.device(device or "cpu"):
        return PNet()


def rnet(device: str | torch.device | None = None) -> RNet:
    """MTCNN's R-Net, random weights: x (N, 3, 24, 24) -> (N,), (N, 4)."""
    with torch.device(device or "cpu"):
        return RNet()


def onet(device: str | torch.device | None = None) -> ONet:
    """MTCNN's O-Net, random weights: x (N, 3, 48, 48) -> (N,), (N, 4), (N, 10)."""
    with torch.device(device or "cpu"):
        return ONet()

# name -> (builder, the (C, H, W) the classifier was built for)
MODELS = {
    "vgg16": (vgg16, (3, 224, 224)),
    "alexnet": (alexnet, (3, 224, 224)),
    "lenet5": (lenet5, (1, 32, 32)),
    "tinyvgg": (tiny_vgg, (3, 64, 64)),
    "question234": (question234, (1, 234, 234)),
}


def build(name: str, device: str | torch.device | None = None) -> tuple[nn.Module, tuple]:
    """Build a course model by its short name; returns ``(model, training input (C, H, W))``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    builder, shape = MODELS[name]
    return builder(device=device), shape
