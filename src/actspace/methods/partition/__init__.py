"""Subspace partition: split a site's activation space into orthogonal subspaces by
neighbour distance minimisation (Huang & Hahn 2025), wire the subspaces of successive sites
into input-independent circuits, and check the result on copy toys with a known circuit.

``math``      NDM loss, blocked exact nearest neighbours, KSG mutual information, merges
``train``     the optimisation with the published merge schedule (orthogonal R)
``circuits``  OV, QK, skip and MLP edges between the partitions around a block
``probes``    current- and previous-token probes per subspace (the toys' known circuit)
``sites``     the config section: sites, variants, blocks, settings, checks
``job``       rules ``partition_site``, ``subspace_circuit``, ``probe_partition``
``summary``   headline numbers beside the published ones
``figures``   training and sizes, the circuit graph, the probes
"""
