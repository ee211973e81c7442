"""A stand-in benchmark for tests of `bench all`: prints a progress line, then one JSON object
(or none with --no-json), and exits with --exit N."""
import json
import sys

if __name__ == "__main__":
    print("warming up")
    if "--no-json" not in sys.argv:
        print(json.dumps({"figure": 1.5, "argv": sys.argv[1:]}))
    sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0)
