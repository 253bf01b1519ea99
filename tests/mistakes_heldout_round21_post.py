"""Round 21, post part, of the held-out probe as (checker, name) rows, in the probe's order
(see mistakes_heldout.py); the names were read off the checkers' results, not typed."""

NAMES = [
    ('check_sft_targets', 'the mask is shifted twice (is_assistant[2:], its last flag repeated), not once'),
    ('check_sft_targets', 'x and y two apart: x = ids[:-2], y = ids[2:] (each target the token after next)'),
    ('check_sft_targets', "masked with -100 (PyTorch's default) instead of mingpt's -1"),
    ('check_sft_targets', 'masked with 0 instead of -1'),
    ('check_sft_targets', 'the last target is never masked (a loop over range(T - 2) stops one short)'),
    ('check_sft_targets', 'the first target is never masked (a loop over range(1, T - 1) leaves y[0] = ids[1])'),
    ('check_sft_targets', "the inputs masked too: x set to -1 where x[t] is not the assistant's"),
    ('check_sft_targets', "the mask is is_assistant[:-1] | is_assistant[1:] (the token after each reply's END is "
                          'trained too), not is_assistant[1:]'),
    ('check_sft_targets', "the mask is is_assistant[:-1] & is_assistant[1:] (each reply's first token is not "
                          'trained), not is_assistant[1:]'),
    ('check_sft_targets', 'wrong dtype: token ids must be integers (torch.long)'),
    ('check_sft_targets', "loss on everything after the assistant's first token"),
    ('check_sft_targets', None),
    ('check_sft_targets', 'two mistakes: the mask is not shifted with the targets (off by one); and masked with '
                          "-100 (PyTorch's default) instead of mingpt's -1"),
    ('check_sft_targets', 'changes its input in place'),
    ('check_sft_targets', 'the mask is inverted (loss on everything but the assistant)'),
    ('check_lora_layer', 'LoRA scaled by rank / alpha (the ratio upside down)'),
    ('check_lora_layer', 'LoRA scaled by alpha instead of alpha / rank'),
    ('check_lora_layer', 'LoRA scaled by 1 / rank (alpha left out)'),
    ('check_lora_layer', 'LoRA scaled by alpha // rank (integer division)'),
    ('check_lora_layer', 'LoRA scaled twice: (alpha / r)^2 (the scale on both A and B, or on the input and the '
                         'output)'),
    ('check_lora_layer', 'merge forgets the scale'),
    ('check_lora_layer', 'merge() scales the correction by 0.5 * alpha / r (a stray factor 0.5)'),
    ('check_lora_layer', 'merge subtracts the correction'),
    ('check_lora_layer', 'the correction is added twice after merge'),
    ('check_lora_layer', 'B initialised non-zero'),
    ('check_lora_layer', 'A initialised to zero'),
    ('check_lora_layer', 'the base layer is not frozen'),
    ('check_lora_layer', "the base layer's bias is not frozen (its weight is)"),
    ('check_lora_layer', 'output off by a constant vector (a bias added twice, or left out)'),
    ('check_lora_layer', 'the LoRA correction is missing at batch row 1 (the whole row): base(x) only there'),
    ('check_lora_layer', 'merge adds (B A).T: the correction transposed (a square layer hides the shape error)'),
    ('check_lora_layer', 'two mistakes: B initialised non-zero; and LoRA scaled by rank / alpha (the ratio upside '
                         'down)'),
    ('check_lora_layer', 'the LoRA correction is missing at the last position of every row: base(x) only there'),
    ('check_dpo_loss', 'beta applied twice (beta^2), not beta'),
    ('check_dpo_loss', 'beta halved (beta / 2), not beta'),
    ('check_dpo_loss', 'beta divides the margin instead of multiplying it'),
    ('check_dpo_loss', "beta multiplies the policy's log-probs only, not the reference's"),
    ('check_dpo_loss', "the loss's sign flipped (logsigmoid without the minus)"),
    ('check_dpo_loss', 'the sign is swapped (chosen and rejected exchanged)'),
    ('check_dpo_loss', 'gradients flow through the reference model'),
    ('check_dpo_loss', "log-probs summed over the answer, then divided by T (the row's length, not the answer's)"),
    ('check_dpo_loss', "log-probs averaged over the answer's tokens, not summed"),
    ('check_dpo_loss', 'summed over the pairs instead of averaged'),
    ('check_dpo_loss', 'log_softmax over the time axis, not the vocabulary'),
    ('check_dpo_loss', 'probabilities summed instead of log-probabilities'),
    ('check_dpo_loss', "the reference's chosen and rejected log-probs swapped"),
    ('check_dpo_loss', "the reference's log-prob subtracted for the chosen answer only"),
    ('check_dpo_loss', 'the mask applied to the rejected answers only (the chosen rows summed over the prompt and '
                       'padding too)'),
    ('check_dpo_loss', "the last position left out of every answer's sum (a [:-1] slice, or range(T - 1))"),
    ('check_dpo_loss', 'sigmoid where log-sigmoid is asked (-sigmoid(beta * margin))'),
    ('check_dpo_loss', "two mistakes: log-probs averaged over the answer's tokens, not summed; and beta applied "
                       'twice (beta^2), not beta'),
    ('check_dpo_loss', 'pairs mixed up: rows flattened as (2, B) (all chosen, then all rejected) but read back as '
                       '(B, 2)'),
    ('check_group_advantages', 'eps too large: it shrinks every advantage'),
    ('check_group_advantages', 'eps too large: it shrinks every advantage'),
    ('check_group_advantages', 'two mistakes: centred across prompts (the mean over the wrong axis); and '
                               'normalised by the std across prompts (the wrong axis)'),
    ('check_group_advantages', 'normalised by the std across prompts (the wrong axis)'),
    ('check_group_advantages', "centred on the whole batch's mean, not each group's"),
    ('check_group_advantages', 'centred on the median, not the mean'),
    ('check_group_advantages', "centred on the mean of the *other* answers (RLOO's leave-one-out baseline), not "
                               "the group's mean"),
    ('check_group_advantages', 'divided by the variance, not the std'),
    ('check_group_advantages', 'normalised by the range (max - min), not the std'),
    ('check_group_advantages', "the std's denominator is G - 2, not G - 1 (Bessel's correction off by one more)"),
    ('check_group_advantages', 'normalised although normalize_std=False'),
    ('check_group_advantages', 'normalize_std read the wrong way round (normalised only when it is False)'),
    ('check_group_advantages', 'two mistakes: the population std (over G) where the sample std (over G - 1) is '
                               'asked; and eps too large: it shrinks every advantage'),
    ('check_group_advantages', 'every group but the first left as its raw rewards: the advantages not computed '
                               'there (a loop that ends after its first group: a return or break inside it, or '
                               'range(1)?)'),
    ('check_group_advantages', 'the last group left as its raw rewards: the advantages not computed there (a loop '
                               'over range(P - 1) stops one short?)'),
    ('check_group_advantages', 'negative advantages clipped to 0 (a clamp(min=0) or relu)'),
    ('check_group_advantages', 'sign flipped'),
    ('check_group_advantages', 'changes its input in place'),
    ('check_group_advantages', 'group statistics without keepdim=True'),
]
