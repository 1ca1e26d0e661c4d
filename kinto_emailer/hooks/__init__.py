"""What metadata says: which hooks apply, their fields and templates, validation at save."""
