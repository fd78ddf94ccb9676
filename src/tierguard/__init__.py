"""tierguard: cost-saving LLM routing with per-tier canary gates.

Layering (see DESIGN.md): ``tierguard.api`` is pure and shared; ``tierguard.router``
(data plane) and ``tierguard.operator`` (control plane) never import each other;
``tierguard.lab`` runs everything on one machine.
"""

__version__ = "0.1.0"
