"""Every command the README, the docs and the notebook name runs a script that exists with flags
that script defines (a renamed flag or a stale `--spec=` fails here, not in a reader's shell)."""

import glob
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `python train.py --config=...` / `python -m ebm_jax.study.leaderboard --tasks=...`, up to the
# line's end (a `\` continuation joins the next line first).
COMMAND = re.compile(r"python3? (?:-m (?P<module>[\w.]+)|(?P<script>[\w/]+\.py))(?P<args>[^\n`]*)")
FLAG = re.compile(r"(?<![\w-])--(?P<name>[a-z_][\w]*)(?:[.=\s]|$)")
# absl flags (every command line defines its flags with absl).
DEFINE = re.compile(r"DEFINE_\w+\(\s*[\"'](?P<name>\w+)[\"']")
ABSL_BUILTIN = {"help", "helpfull", "helpshort", "flagfile", "undefok"}


def _texts():
  paths = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "benchmarks", "README.md"),
           *glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)]
  for path in paths:
    with open(path) as f:
      yield os.path.relpath(path, ROOT), f.read().replace("\\\n", " ")
  with open(os.path.join(ROOT, "notebooks", "quickstart.ipynb")) as f:
    cells = json.load(f)["cells"]
  yield "notebooks/quickstart.ipynb", "\n".join("".join(c["source"]) for c in cells)


def _defined_flags(source_path):
  """The flags a main defines: in its own file and in the library modules it imports."""
  with open(source_path) as f:
    text = f.read()
  names = set(DEFINE.findall(text))
  for package, modules in re.findall(r"from (ebm_jax(?:\.\w+)*) import ([\w, ]+)", text):
    for name in modules.split(","):
      path = os.path.join(ROOT, *package.split("."), name.split(" as ")[0].strip() + ".py")
      if os.path.exists(path):
        with open(path) as f:
          names |= set(DEFINE.findall(f.read()))
  if "DEFINE_config_file" in text or "parse_flags_with_config" in text:
    names.add("config")         # --config=<recipe> or the --config.<key>=<value> overrides
  return names


def _commands():
  for where, text in _texts():
    for m in COMMAND.finditer(text):
      if m["module"]:
        if not m["module"].startswith("ebm_jax"):
          continue
        path = os.path.join(ROOT, *m["module"].split(".")) + ".py"
        if not os.path.exists(path):       # a package's command: its __main__.py
          path = os.path.join(ROOT, *m["module"].split("."), "__main__.py")
      else:
        path = os.path.join(ROOT, m["script"])
      yield where, m.group(0).strip(), path, [f["name"] for f in FLAG.finditer(m["args"])]


def test_documented_commands_name_existing_scripts_and_flags():
  checked, problems = 0, []
  for where, command, path, flag_names in _commands():
    if "my_sweep" in command or "<" in command:
      continue                      # placeholders for the reader's own files
    if not os.path.exists(path):
      problems.append(f"{where}: {command!r}: no {os.path.relpath(path, ROOT)}")
      continue
    if not path.endswith(".py") or "benchmarks" in path:
      continue
    defined = _defined_flags(path) | ABSL_BUILTIN
    problems += [f"{where}: {command!r}: --{n} is not a flag of {os.path.relpath(path, ROOT)}"
                 for n in flag_names if n not in defined]
    checked += 1
  assert not problems, "\n".join(problems)
  assert checked >= 20, checked     # the README alone names more commands than this


def test_the_check_catches_an_unknown_flag():
  # The regexes must see the flags of a command, so a renamed flag would fail the test above.
  m = COMMAND.search("run `python sweep.py --spec=sweeps/x.py --workdir=runs/x` now")
  assert m["script"] == "sweep.py"
  assert [f["name"] for f in FLAG.finditer(m["args"])] == ["spec", "workdir"]
  assert "spec" not in _defined_flags(os.path.join(ROOT, "sweep.py"))
  assert "workdir" in _defined_flags(os.path.join(ROOT, "sweep.py"))
