"""What a prediction writes, beside the model's flow: one record, built once by Flownet2_predict.py or a
collection's settings and passed whole to prepare_outputs() and predict().

A new output is a field here and, when it is written per pair, one entry in predict._Writer's table
of writers (name -> function of the pair).
"""
from dataclasses import dataclass, field
from fractions import Fraction

from ..data.flow_formats import FlowFormat
from ..sizes import OutputSize
from ..score.quality import ALPHA1, ALPHA2


@dataclass(frozen=True)
class Outputs:
    fmt: FlowFormat = field(default_factory=FlowFormat)  # the flow files' format (.flo by default)
    png: bool = False              # a labelled picture per pair, beside its flow
    video: str | None = None       # a video of those pictures (a path), one frame per pair
    fps: Fraction | None = None    # the video's frame rate (default: the source's)
    gt_dir: str | None = None      # ground truth of the same names: EPE per pair, and in the pictures
    rgb: bool = False              # every frame as mmaction2's img_N.jpg beside the flow
    radius: float | None = None    # the colour wheel's radius (default: the first pair's)
    size: OutputSize = field(default_factory=OutputSize)  # flows, frames, pictures: the source's size unless set
    # flow checked without ground truth (flownet2.score.quality)
    backward: bool = False         # the flow from each pair's second frame back to its first, as files
    occlusion: bool = False        # <pair>_occ.png: the consistency mask, 255 = consistent
    quality: bool = False          # scores per pair and quality.csv
    occ_alpha1: float = ALPHA1     # the consistency rule's constants
    occ_alpha2: float = ALPHA2
    flow: bool = True              # the flow files themselves (a motion-score run writes none unless asked)
    motion: bool = False           # motion scores summed over the pairs (flownet2.score.motion), in the Result

    @property
    def pictures(self):
        """Whether any picture is drawn (then each pair's first frame is kept for it)."""
        return self.png or bool(self.video)

    @property
    def two_way(self):
        """Whether the model also runs each pair the other way round (the backward flow)."""
        return self.backward or self.occlusion or self.quality

    @property
    def keeps_frames(self):
        """Whether each pair's two frames are kept for the writer: pictures, the photometric error."""
        return self.pictures or self.quality
