"""Run a notebook headless and read values out of its kernel, for tests that recompute what a
notebook computed."""
import pickle
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def _text_of(outputs) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


class ExecutedNotebook:
    """A notebook executed in a fresh kernel, with values read out of that kernel."""

    def __init__(self, nb, values):
        self.nb, self.values = nb, values

    def __getitem__(self, name):
        return self.values[name]

    def output(self, snippet: str) -> str:
        """The text output of the one code cell whose source contains `snippet`."""
        cells = [c for c in self.nb.cells if c.cell_type == "code" and snippet in c.source]
        assert len(cells) == 1, f"{len(cells)} code cells contain {snippet!r}"
        return _text_of(cells[0].outputs)


def execute_notebook(path: Path, read: dict, dump_dir: Path) -> ExecutedNotebook:
    """Run the notebook at `path` with nbclient, in a kernel of this environment (quick mode, the
    session's artifacts folder unless the caller changed CIFAR10_ARTIFACTS), then evaluate each
    expression of `read` ({name: expression}) in that kernel and return the values, so that a
    test can recompute what the notebook computed. Raises CellExecutionError if a cell fails."""
    nb = nbformat.read(path, as_version=4)
    dump = Path(dump_dir) / f"{path.stem}.values.pickle"
    nb.cells.append(nbformat.v4.new_code_cell(
        "import pickle as _pickle\n"
        f"with open({str(dump)!r}, 'wb') as _file:\n"
        f"    _pickle.dump({{_k: eval(_e, globals()) for _k, _e in {dict(read)!r}.items()}}, _file)"))
    NotebookClient(nb, timeout=900, kernel_name="cifar10-cnn",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.cells.pop()
    with open(dump, "rb") as f:
        values = pickle.load(f)
    return ExecutedNotebook(nb, values)
