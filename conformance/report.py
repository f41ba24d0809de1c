"""The verdict lines of the check_lorakit_* scripts, which run.sh counts:
"ok <what>" or "FAIL <what>" per check, then "N passed, N failed"."""


def report(results, subject):
    """results: (ok, message) pairs; prints them after `subject` and returns the exit status."""
    for ok, message in results:
        print(f"{'ok' if ok else 'FAIL'} {subject} {message}")
    failures = sum(not ok for ok, _ in results)
    print(f"{len(results) - failures} passed, {failures} failed")
    return 1 if failures else 0
