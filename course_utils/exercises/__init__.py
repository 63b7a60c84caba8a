"""Checks for the exercises in every chapter (``course_utils.exercises.check_*``).

Each ``check_*`` function takes the learner's function, runs it on small fixed cases
against the course's reference, and returns a :class:`CheckResult` that displays as one
line. A function that still raises ``NotImplementedError`` is reported as not yet done,
so student notebooks run top to bottom. One module per chapter: ``ch1.py``, ``ch2.py``...

A demo cell that calls a learner's function takes it from :func:`yours_or_reference`:
the learner's own once it passes its check, the course's reference (``reference_*`` here,
or the package function) with a one-line ``[USING REFERENCE]`` note until then.
:func:`assert_passes` is the hidden test nbgrader's autograder runs in each check cell.
"""

from .ch1 import check_frequent_words, check_masked_mean, check_rnn_parameter_count
from .ch2 import (
    check_agp_sparsity,
    check_global_sparsities,
    check_magnitude_mask,
    reference_agp,
    reference_magnitude_mask,
)
from .ch3 import (
    check_jaccard,
    check_movement_update,
    check_taylor_importance,
    reference_taylor_importance,
)
from .ch4 import (
    check_group_shrink,
    check_iss_group_masks,
    check_remove_units,
    check_soft_threshold,
    reference_group_shrink,
    reference_remove_units,
)
from .ch5 import (
    check_discriminator_loss,
    check_embedded_logits,
    check_information_entropy_loss,
    check_mask_outgoing,
    check_mask_prox_step,
    reference_mask_outgoing,
)
from .ch6 import check_bitmask_bytes, check_compression_ratio, check_csr_encode, reference_csr
from .common import CheckResult, Choice, assert_passes, yours_or_reference

__all__ = [
    "CheckResult",
    "Choice",
    "assert_passes",
    "check_agp_sparsity",
    "check_bitmask_bytes",
    "check_compression_ratio",
    "check_csr_encode",
    "check_discriminator_loss",
    "check_embedded_logits",
    "check_frequent_words",
    "check_global_sparsities",
    "check_group_shrink",
    "check_information_entropy_loss",
    "check_iss_group_masks",
    "check_jaccard",
    "check_magnitude_mask",
    "check_mask_outgoing",
    "check_mask_prox_step",
    "check_masked_mean",
    "check_movement_update",
    "check_remove_units",
    "check_rnn_parameter_count",
    "check_soft_threshold",
    "check_taylor_importance",
    "reference_agp",
    "reference_csr",
    "reference_group_shrink",
    "reference_magnitude_mask",
    "reference_mask_outgoing",
    "reference_remove_units",
    "reference_taylor_importance",
    "yours_or_reference",
]
