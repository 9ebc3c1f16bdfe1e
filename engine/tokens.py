"""The special tokens every diffill tokenizer carries, at fixed ids 0..4.

Fixed ids let the model, the sampler and the exported graphs agree without
looking anything up. The sequence layout is suffix-first (SPM):
`<fim_suffix> suffix <fim_prefix> prefix <fim_middle> canvas`.
"""

FIM_SUFFIX = "<fim_suffix>"
FIM_PREFIX = "<fim_prefix>"
FIM_MIDDLE = "<fim_middle>"
MASK = "<mask>"
EOM = "<eom>"  # end of middle; also pads a canvas past the end of the gap

SPECIAL_TOKENS: tuple[str, ...] = (FIM_SUFFIX, FIM_PREFIX, FIM_MIDDLE, MASK, EOM)

SUFFIX_ID, PREFIX_ID, MIDDLE_ID, MASK_ID, EOM_ID = range(len(SPECIAL_TOKENS))
