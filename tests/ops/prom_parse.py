#!/usr/bin/python3
"""Parses a Prometheus text exposition from stdin with prometheus_client's parser (not berth's)
and prints the samples as JSON: {"families": {name: type}, "samples": [[name, {labels}, value]]}.
Exits 1 with the parser's error on malformed input."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

def main():
    text = sys.stdin.read()
    families, samples = {}, []
    try:
        for fam in text_string_to_metric_families(text):
            families[fam.name] = fam.type
            for s in fam.samples:
                samples.append([s.name, s.labels, s.value])
    except Exception as e:  # the parser raises ValueError and others on bad input
        print(f"parse error: {e}", file=sys.stderr)
        return 1
    json.dump({"families": families, "samples": samples}, sys.stdout)
    return 0

if __name__ == "__main__":
    sys.exit(main())
