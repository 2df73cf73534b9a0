"""model=gbm: gradient-boosted trees (LightGBM) on the table and on frozen embeddings.

The trees' input per row (``Features``): for a tabular modality its numbers as they are (NaN where
missing: LightGBM learns where missing values go) and its categories as codes of the train vocabulary
(native categorical splits; 0 = a value never seen or rare in train, NaN = missing); for any other
modality the mean of its frozen pretrained encoder's features (the store's, computed once), reduced by
a PCA fitted on the train rows (``model.embedding_dims``), NaN where the row lacks it.
``GbmModel`` reads a model=gbm run dir's ``gbm/`` folder and predicts like a network's run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mmtrain.core.errors import ConfigError, build
from mmtrain.data.feature_store import featurizers
from mmtrain.inference.rows import RowReader
from mmtrain.tasks import TASKS

MODEL = "model.json"  # in gbm/: what the trees read, the tasks and calibration


def pooled(vectors: list[torch.Tensor]) -> np.ndarray:
    """Per-sample features [L, D] (or [D]) -> [N, D]: the mean over the sequence."""
    return np.stack([(v.float().mean(0) if v.ndim > 1 else v.float()).numpy() for v in vectors])


class Features:
    """The trees' input matrix of a table (see the module docstring); ``state`` is plain containers."""

    def __init__(self, modalities: dict, encoders: dict, pca: dict):
        self.modalities = modalities  # name -> modality type
        self.encoders = encoders  # non-tabular name -> encoder config (a frozen pretrained one)
        self.pca = pca  # name -> {"mean": [D], "components": [k, D]}
        self.built: dict = {}  # name -> its encoder, kept while resident (a server)
        self.resident = False

    @classmethod
    def fit(cls, table, modalities: list[str], encoders: dict, dims: int | None, train: np.ndarray, **store):
        """(features for ``modalities`` of ``table``, the PCA fitted on the ``train`` rows; the embeddings
        computed for it, which ``matrix`` takes so that they are not computed twice)."""
        from sklearn.decomposition import PCA

        types = {m: table.modality_types[m] for m in modalities}
        embedded = {m: encoders[m] for m in modalities if types[m] != "tabular"}
        features, computed = cls(types, embedded, {}), {}
        for m in embedded:
            vectors = computed[m] = features.embeddings(table, m, **store)
            rows = train[~np.isnan(vectors[train]).any(1)]
            if dims and len(rows) > dims and vectors.shape[1] > dims:
                pca = PCA(dims, random_state=0).fit(vectors[rows])
                features.pca[m] = {"mean": pca.mean_.tolist(), "components": pca.components_.tolist()}
        return features, computed

    def state(self) -> dict:
        return {"modalities": self.modalities, "encoders": self.encoders, "pca": self.pca}

    def embeddings(self, table, m: str, cache_dir=None, device="cpu", precision="32-true") -> np.ndarray:
        encoder = self.built.get(m) or build(self.encoders[m], f"encoder_for.{m}")
        if self.resident:
            encoder.resident, self.built[m] = True, encoder
        if encoder.cache_key() is None:
            raise ConfigError(
                f"model=gbm reads modality '{m}' ({self.modalities[m]}) as the pooled features of a frozen "
                f"pretrained encoder, and {type(encoder).__name__} is not one: choose one (e.g. "
                f"encoder/text=minilm) or leave '{m}' out (modalities=[...])."
            )
        raws = table.modalities[m]
        present = [i for i, v in enumerate(raws) if v is not None]
        featurize = featurizers({m: encoder}, cache_dir, device, precision)[m]
        done = pooled(list(featurize([raws[i] for i in present]))) if present else None
        width = done.shape[1] if done is not None else encoder.out_dim
        out = np.full((len(raws), width), np.nan)
        if present:
            out[present] = done
        return out

    def matrix(
        self, table, preprocessing: dict, computed: dict | None = None, **store
    ) -> tuple[np.ndarray, list[str], list[int], list[str]]:
        """(X [N, F], feature names, the categorical features' indices, each feature's modality);
        ``computed``: embeddings of this table already computed (by ``fit``)."""
        blocks, names, categorical, groups = [], [], [], []
        for m, kind in self.modalities.items():
            if kind == "tabular":
                block, block_names, cats = tabular_block(table.modalities[m], preprocessing[m])
                categorical += [len(names) + i for i in cats]
            else:
                block = (computed or {}).get(m)
                block = self.embeddings(table, m, **store) if block is None else block
                if m in self.pca:
                    p = self.pca[m]
                    block = (block - np.asarray(p["mean"])) @ np.asarray(p["components"]).T
                block_names = [f"{m}:{i}" for i in range(block.shape[1])]
            blocks.append(block)
            names += block_names
            groups += [m] * len(block_names)
        return np.concatenate(blocks, axis=1), names, categorical, groups


def tabular_block(rows: list, pre: dict) -> tuple[np.ndarray, list[str], list[int]]:
    """Rows as the tabular type reads them -> numbers (NaN where missing) then category codes (1 + the
    index in the train vocabulary, 0 for an unseen or rare value, NaN where missing)."""
    n, vocabs = len(pre["numeric"]), pre["vocab"]
    index = [{v: i + 1 for i, v in enumerate(vocab)} for vocab in vocabs]
    out = np.full((len(rows), n + len(vocabs)), np.nan)
    for r, row in enumerate(rows):
        if row is None:
            continue
        out[r, :n] = row[:n]
        for j, value in enumerate(row[n:]):
            out[r, n + j] = np.nan if value is None else index[j].get(value, 0)
    return out, list(pre["numeric"]) + list(pre["categorical"]), list(range(n, n + len(vocabs)))


def boosters(folder: Path, task: str, spec: dict) -> list:
    """The task's LightGBM boosters: one, or one per label of a multilabel task."""
    import lightgbm as lgb

    return [lgb.Booster(model_file=str(folder / f"{name}.txt")) for name in model_names(task, spec)]


def model_names(task: str, spec: dict) -> list[str]:
    """The boosters' file stems: the task, or <task>__<label> per label of a multilabel task."""
    return [f"{task}__{label}" for label in spec["classes"]] if spec["type"] == "multilabel" else [task]


def values_of(spec: dict, raw: list[np.ndarray]) -> np.ndarray:
    """The boosters' predictions -> [N, K] probabilities per class (or the value)."""
    if spec["type"] == "multilabel":
        return np.stack(raw, axis=1)
    out = raw[0]
    if spec["type"] == "regression":
        return out.reshape(-1, 1)
    return np.stack([1 - out, out], axis=1) if out.ndim == 1 else out


def outputs_of(spec: dict, values: np.ndarray) -> torch.Tensor:
    """What calibration and ``predictions`` take: log probabilities, logits or values."""
    return TASKS.get(spec["type"]).outputs_of(torch.as_tensor(values, dtype=torch.float32))


class GbmModel(RowReader):
    """A model=gbm run's trees, reading new rows as training did."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        saved = json.loads((self.folder / MODEL).read_text())
        super().__init__(
            saved["data_spec"], saved["tasks"], list(saved["features"]["modalities"]), saved["preprocessing"]
        )
        self.features = Features(**saved["features"])
        self.calibration = saved["calibration"]
        self.boosters = {t: boosters(self.folder, t, s) for t, s in self.tasks.items()}

    def keep_resident(self) -> None:
        self.features.resident = True

    def outputs(self, table, batch_size: int = 64, cache_dir=None, device="cpu"):
        x, *_ = self.features.matrix(table, self.preprocessing, cache_dir=cache_dir, device=device)
        outputs = {
            t: outputs_of(s, values_of(s, [b.predict(x) for b in self.boosters[t]]))
            for t, s in self.tasks.items()
        }
        present = torch.tensor(
            np.stack([[v is not None for v in table.modalities[m]] for m in self.modalities], axis=1)
        )
        return outputs, present

    def export_refusal(self) -> ConfigError:
        return ConfigError(
            f"run={self.folder.parent} is a model=gbm run: its trees are LightGBM models, not a network to "
            f"export as ONNX. Use them as they are ({self.folder}/<task>.txt, LightGBM's own format; "
            f"the features they read are described in {self.folder}/{MODEL}) or predict with mmtrain-predict."
        )
