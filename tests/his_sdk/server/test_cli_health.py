import asyncio

from click.testing import CliRunner

from his_sdk.cli import main


async def test_health_probe_reports_serving_and_unreachable(target):
    runner = CliRunner()
    ok = await asyncio.to_thread(runner.invoke, main, ["health", "--target", target, "--wait", "5"])
    assert ok.exit_code == 0 and "SERVING" in ok.output
    down = await asyncio.to_thread(
        runner.invoke, main, ["health", "--target", "127.0.0.1:1", "--wait", "0"]
    )
    assert down.exit_code != 0 and "unreachable" in down.output
