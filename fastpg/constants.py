"""Numbers fixed by the Atari screen and the seed's preprocessing, defined once for the package."""

FRAME_SHAPE = (210, 160, 3)  # an Atari RGB screen: rows, columns, channels
FRAME_SIDE = 80  # the preprocessed frame is FRAME_SIDE x FRAME_SIDE pixels
N_PIXELS = FRAME_SIDE * FRAME_SIDE
# The most threads a learner kernel takes: a batch keeps a few dozen busy at most, and before the
# limit 100,000 threads crashed Adam with a segmentation fault.
MAX_THREADS = 256
UP, DOWN = 2, 3  # Pong's up and down: indices into its minimal action set, as in gymnasium
# The 80 x 80 frame reads 2 * FRAME_SIDE screen rows from a game's first_row; they must fit on the screen.
MAX_FIRST_ROW = FRAME_SHAPE[0] - 2 * FRAME_SIDE
# The seed's frame rule, the defaults of every kernel that reads the screen: Pong's playfield starts at
# row 35, and a pixel is foreground unless its red value is one of Pong's background colours.
PONG_FIRST_ROW = 35
PONG_BACKGROUND_REDS = (0, 144, 109)
