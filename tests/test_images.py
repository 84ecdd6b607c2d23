import numpy as np
from PIL import Image

from tfkit.images import TITLE_HEIGHT, save_grid, tile


def test_tile_makes_a_square_grid():
    grid = tile(np.ones((5, 32, 32, 3), dtype="uint8"))
    assert grid.shape == (64, 96, 3)  # 3 columns, 2 rows
    assert grid[:32].min() == 1 and grid[32:, :64].min() == 1 and grid[32:, 64:].max() == 0


def test_save_grid_writes_the_grid_upscaled_by_nearest_pixels(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    save_grid(tmp_path / "grid.png", images, scale=4)
    written = np.asarray(Image.open(tmp_path / "grid.png"))
    assert (written == tile(images).repeat(4, axis=0).repeat(4, axis=1)).all()
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_a_titled_grid_has_a_label_strip_above(tmp_path):
    images = np.zeros((16, 32, 32, 3), dtype=np.uint8)
    save_grid(tmp_path / "grid.png", images, title="epoch 7")
    written = np.asarray(Image.open(tmp_path / "grid.png"))
    assert written.shape == (128 * 4 + TITLE_HEIGHT, 128 * 4, 3)  # 4x the 128-pixel grid
    strip = written[:TITLE_HEIGHT]
    assert strip.max() == 255 and strip.min() < 64  # white, with dark (antialiased) text
