"""What kvplan reads: spec models (one class per attention kind, models, GPUs), the catalog (the
only code that opens spec files), the prebuilt index of the packaged specs, the Hugging Face
config importer, check files and request traces."""
