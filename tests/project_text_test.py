"""The project's files speak of the project: what a user needs, not the machines, tools or
tickets they were written with."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTSIDE = re.compile("|".join((
    r"\b(is|was|were|are|been|being|be) lent\b",      # machines lent to whoever wrote it
    r"\blends? (a|the|us|me|them|it)\b",
    r"\$OUT\b",                                         # a tool's output folder
    r"\bcarry (it|them)\b",                             # files to take to a borrowed machine
    r"\b(carry|carried|not_carried)\b.{0,20}\b(wheels?|\.whl|venv)\b",
    r"\bthe issue'?s?\b",                               # the ticket a change came from
    r"\bthis machine (cannot|can't|can not) download\b",
    r"\bdevice tool\b",
)), re.IGNORECASE)


def test_no_file_speaks_of_the_machines_or_tickets_it_was_written_with():
  tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
  found = []
  for path in tracked:
    if not path.endswith((".py", ".md", ".sh", ".ipynb", ".txt", ".toml", ".cfg")) and (
        path != ".ci/run") or path == "tests/project_text_test.py":
      continue
    with open(os.path.join(ROOT, path), errors="replace") as f:
      for number, line in enumerate(f, 1):
        if OUTSIDE.search(line):
          found.append(f"{path}:{number}: {line.strip()[:120]}")
  assert not found, "\n".join(found)
