import numpy as np
from PIL import Image

from tfkit.images import save_grid, tile


def test_tile_makes_a_square_grid():
    grid = tile(np.ones((5, 32, 32, 3), dtype="uint8"))
    assert grid.shape == (64, 96, 3)  # 3 columns, 2 rows
    assert grid[:32].min() == 1 and grid[32:, :64].min() == 1 and grid[32:, 64:].max() == 0


def test_save_grid_writes_a_png_of_the_grid(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    save_grid(tmp_path / "grid.png", images)
    written = np.asarray(Image.open(tmp_path / "grid.png"))
    assert (written == tile(images)).all()
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
