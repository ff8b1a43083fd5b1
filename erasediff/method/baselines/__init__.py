"""The methods EraseDiff is compared with, selected by `unlearning.recipe` (finetune, neggrad, salun, esd)."""
