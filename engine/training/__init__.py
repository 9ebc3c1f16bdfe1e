"""The training pipeline: corpus, tokenizer training, FIM examples, the train loop and its
long-lived run, checkpoints, and the ONNX export. Imports torch; serving never imports it."""
