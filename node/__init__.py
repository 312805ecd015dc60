"""vbg-node: the forum side of a Réseau VBG node (accounts, communities, threads, web pages)."""
