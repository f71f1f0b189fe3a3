"""Python tooling for the Vyper margin engine.

Modules:

- ``margin_engine.model``: integer reference model of the engine's margin math
  (mirrors the contracts to the wei);
- ``margin_engine.config``: typed deployment configuration (pydantic);
- ``margin_engine.deploy``: deployment from a configuration, through Ape;
- ``margin_engine.liquidator``: the liquidator/keeper bot's decisions (health,
  liquidation quotes, ranking, account discovery) over lens data, without Ape;
- ``margin_engine.runner``: the bot's I/O layer over Ape (``LiquidatorBot``);
- ``margin_engine.anvil``: a local anvil node for tests and benchmarks;
- ``margin_engine.volatility``: the integer model of the volatility margin
  (``docs/risk-model.md``); ``margin_engine.calibration``: its calibration on
  BTC and ETH history (``python scripts/calibrate.py``);
- ``margin_engine.sizes``: ``python -m margin_engine.sizes``, runtime bytecode
  sizes against the EIP-170 limit.

Importing this package does not import Ape: modules that need Ape import it
inside their functions, so the model and the configuration stay usable (and
fast to import) without a network or a project.
"""

__version__ = "0.1.0"

WAD = 10**18
"""18-decimal fixed point one (1.0 or 100%)."""
