"""The stage of a run, as one value computed where the run starts. Imports no TensorFlow.

  Stage.of(suc_layers=0)                      PLAIN: fine-tuning every layer (how a predecessor
                                              is made); the graph is the plain L-layer BERT.
  Stage.of(suc_layers=n)                      REPLACING (stage 1): the Theseus graph, where each
                                              step draws successor module j or predecessor group
                                              j; only the successor modules are trained.
  Stage.of(suc_layers=n, finetune_suc=True)   SUCCESSOR (stage 2): the n successor modules alone,
                                              everything in that graph trained.

Whatever the stage, evaluation, prediction and export build `inference_graph`: the successor
alone when there is one (what gets shipped), else the plain BERT. Successor j starts from the
predecessor layer SUC_INIT_RULES picks (layer j by default, as both reference implementations
do).
"""

import collections

PLAIN = "plain"
REPLACING = "replacing"
SUCCESSOR = "successor"

# Encoder graphs (modeling_theseus.transformer_model_theseus modes).
PREDECESSOR_GRAPH = "predecessor"
THESEUS_GRAPH = "theseus"
SUCCESSOR_GRAPH = "successor"

# Rules for the predecessor layer that initialises successor module j (group size r).
SUC_INIT_RULES = {
    "first": lambda j, r: j,  # layer j, as both reference implementations do
    "group_first": lambda j, r: j * r,  # first layer of group j
    "group_last": lambda j, r: j * r + r - 1,  # last layer of group j
}

_DESCRIPTIONS = {PLAIN: "plain fine-tuning", REPLACING: "stage 1 (replacing)",
                 SUCCESSOR: "stage 2 (successor fine-tuning)"}


class Stage(collections.namedtuple("Stage", ["kind", "suc_layers"])):
  """kind: PLAIN, REPLACING or SUCCESSOR; suc_layers: n (0 for PLAIN)."""

  @classmethod
  def of(cls, suc_layers=0, finetune_suc=False):
    """The stage of google-research/bert-style arguments (suc_layers, finetune_suc).

    Raises:
      ValueError: finetune_suc without successor modules.
    """
    if finetune_suc and not suc_layers:
      raise ValueError("finetune_suc needs a graph with successor (suc_layer_*) variables")
    if not suc_layers:
      return cls(PLAIN, 0)
    return cls(SUCCESSOR if finetune_suc else REPLACING, suc_layers)

  @property
  def finetune_suc(self):
    return self.kind == SUCCESSOR

  @property
  def description(self):
    return _DESCRIPTIONS[self.kind]

  @property
  def trains_only_successor(self):
    """Stage 1 trains the successor modules (and the groups a user adds), nothing else."""
    return self.kind == REPLACING

  def encoder_graph(self, is_training):
    """The encoder graph a model of this stage builds: training, or inference."""
    if self.kind == PLAIN:
      return PREDECESSOR_GRAPH
    if self.kind == REPLACING and is_training:
      return THESEUS_GRAPH
    return SUCCESSOR_GRAPH

  @property
  def inference_stage(self):
    """The stage whose training graph is this stage's inference graph (what is shipped)."""
    return self if self.kind == PLAIN else Stage(SUCCESSOR, self.suc_layers)
