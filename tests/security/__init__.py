"""Attack tests (issue 18): each tries to get through a boundary and proves it holds."""
