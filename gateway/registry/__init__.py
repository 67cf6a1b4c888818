"""Registry: the community (sites, grids, buildings, households, devices, people, roster)."""
