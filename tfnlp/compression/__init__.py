"""Model compression: tfmot pruning, QAT and clustering; TFLite post-training quantization."""
