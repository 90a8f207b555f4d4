"""FaceForensics++ data: a synthetic generator, the face-crop preparation, datasets and a DataModule."""
