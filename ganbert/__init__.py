"""ganbert: a self-contained GAN-BERT library (Croce et al., ACL 2020); never imports t2i_cli."""
