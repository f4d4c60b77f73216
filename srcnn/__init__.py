"""srcnn: a self-contained SRCNN super-resolution library (Dong et al.); never imports t2i_cli."""
