import sys
from pathlib import Path

# the subprocess helpers of the reliability tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reliability"))
