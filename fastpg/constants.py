"""Numbers fixed by the Atari screen and the seed's preprocessing, defined once for the package."""

FRAME_SHAPE = (210, 160, 3)  # an Atari RGB screen: rows, columns, channels
FRAME_SIDE = 80  # the preprocessed frame is FRAME_SIDE x FRAME_SIDE pixels
N_PIXELS = FRAME_SIDE * FRAME_SIDE
UP, DOWN = 2, 3  # Pong's up and down: indices into its minimal action set, as in gymnasium
