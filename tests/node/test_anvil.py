"""The deployment script over JSON-RPC on a real node (anvil), and Ape in
this process connected to that node."""

from __future__ import annotations

from eth_utils import keccak

from margin_engine.anvil import CHAIN_ID, TEST_ACCOUNTS


def selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def test_node_has_the_test_accounts(anvil, accounts):
    node_accounts = anvil.rpc("eth_accounts")
    assert len(node_accounts) == TEST_ACCOUNTS
    assert [a.lower() for a in node_accounts] == [
        a.address.lower() for a in accounts[:TEST_ACCOUNTS]
    ]
    assert int(anvil.rpc("eth_chainId"), 16) == CHAIN_ID


def test_deploy_script_over_json_rpc(anvil, deployment):
    assert deployment["network"] == "ethereum:local:foundry"
    assert deployment["markets"] == {"BTC": 0, "ETH": 1}
    for key, address in deployment["addresses"].items():
        code = anvil.rpc("eth_getCode", address, "latest")
        assert len(code) > 2, f"{key} at {address} has no code"

    engine = deployment["addresses"]["engine"]
    raw = anvil.rpc("eth_call", {"to": engine, "data": selector("market_count()")}, "latest")
    assert int(raw, 16) == 2


def test_ape_in_process_on_the_node(anvil, deployment, on_node, networks, project, accounts):
    addresses = deployment["addresses"]
    with on_node() as provider:
        assert provider.name == "foundry"
        assert provider.process is None  # ape-foundry did not start (nor will stop) a node
        assert provider.chain_id == CHAIN_ID

        engine = project.MarginEngine.at(addresses["engine"])
        assert engine.market_count() == 2
        assert engine.vault() == addresses["vault"]

        # A transaction signed by a test account, sent over JSON-RPC.
        usdc = project.MockERC20.at(addresses["settlement_asset"])
        before = usdc.balanceOf(accounts[9])
        receipt = usdc.mint(accounts[9], 123, sender=accounts[0])
        assert not receipt.failed
        assert usdc.balanceOf(accounts[9]) == before + 123
        assert int(anvil.rpc("eth_blockNumber"), 16) == receipt.block_number

    # Back on the in-process test chain; the node is still up.
    assert networks.provider.name == "test"
    assert anvil.running
