"""What a prediction writes, beside the model's flow: one record, built once by Flownet2_predict.py or a
collection's settings and passed whole to prepare_outputs() and predict().

A new output is a field here and, when it is written per pair, one entry in predict._Writer's table
of writers (name -> function of the pair).
"""
from dataclasses import dataclass, field
from fractions import Fraction

from ..data.flow_formats import FlowFormat


@dataclass(frozen=True)
class Outputs:
    fmt: FlowFormat = field(default_factory=FlowFormat)  # the flow files' format (.flo by default)
    png: bool = False              # a labelled picture per pair, beside its flow
    video: str | None = None       # a video of those pictures (a path), one frame per pair
    fps: Fraction | None = None    # the video's frame rate (default: the source's)
    gt_dir: str | None = None      # ground truth of the same names: EPE per pair, and in the pictures
    rgb: bool = False              # every frame as mmaction2's img_N.jpg beside the flow
    radius: float | None = None    # the colour wheel's radius (default: the first pair's)

    @property
    def pictures(self):
        """Whether any picture is drawn (then each pair's first frame is kept for it)."""
        return self.png or bool(self.video)
