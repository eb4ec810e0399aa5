"""The ``airoboros-bot`` command line: chat, worker, prompt."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from airoboros_bot.bots.core.runtime import Runtime
from airoboros_bot.bots.games import GameEngine
from airoboros_bot.bots.terminal.chat import TerminalChat
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.config.settings import Settings, SettingsError, load_settings
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ContextBlock, ConversationKey, Mode, Turn
from airoboros_bot.conversations.prompt import fit_prompt
from airoboros_bot.engine.model.manifest import read_manifest
from airoboros_bot.engine.redis_connect import stop_retrying
from airoboros_bot.engine.supervisor import supervise

log = logging.getLogger("airoboros_bot")

DEMO_BANNER = """\
*** Demo model: random weights, so its answers are noise. ***
To chat with airoboros-7b-gpt4, convert it once and point the bot at it:
  pip install '.[convert]'
  airoboros-bot convert /path/to/airoboros-7b-gpt4 ./models/airoboros-7b-gpt4-int8
  export AIROBOROS_ENGINE_MODEL_DIR=./models/airoboros-7b-gpt4-int8"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airoboros-bot", description="Chat with airoboros-7b-gpt4 on CTranslate2."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = sub.add_parser("chat", help="chat in the terminal")
    chat.add_argument("--temperature", type=float, default=None)
    chat.add_argument("--max-new-tokens", type=int, default=None)
    chat.add_argument("--no-history", action="store_true", help="send each question alone")
    chat.add_argument("--model-dir", type=Path, default=None)
    chat.add_argument("--multiline", action="store_true", help="an empty line ends a message")
    chat.add_argument(
        "--conversation", default="default", help="name of the stored conversation to continue"
    )
    chat.add_argument(
        "--local-worker",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the engine in this process (default: yes unless AIROBOROS_REDIS_URL is set)",
    )

    worker = sub.add_parser("worker", help="run the engine worker")
    worker.add_argument("--model-dir", type=Path, default=None)
    worker.add_argument("--name", default=None, help="worker name (default: host-pid-random)")
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker on this host reported in recently, 1 otherwise",
    )

    prompt = sub.add_parser(
        "prompt", help="print the exact prompt for a conversation (JSON on stdin)"
    )
    prompt.add_argument("--tokens", action="store_true", help="also print token counts")
    prompt.add_argument("--model-dir", type=Path, default=None)
    prompt.add_argument("--max-new-tokens", type=int, default=None)

    for name, help_text in (("discord", "run the Discord bot"), ("slack", "run the Slack app")):
        bot = sub.add_parser(name, help=help_text)
        bot.add_argument(
            "--local-worker",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="run the engine in this process (default: yes unless AIROBOROS_REDIS_URL is set)",
        )
        bot.add_argument("--model-dir", type=Path, default=None)
        if name == "slack":
            bot.add_argument("--http", action="store_true", help="HTTP mode instead of Socket Mode")
            bot.add_argument("--port", type=int, default=3000, help="HTTP mode port")

    convert = sub.add_parser(
        "convert", help="convert a Hugging Face LLaMA checkpoint to CTranslate2"
    )
    convert.add_argument("hf_dir", type=Path, nargs="?")
    convert.add_argument("out_dir", type=Path, nargs="?")
    convert.add_argument(
        "--quantization", choices=["int8", "int8_float16", "float16", "float32"], default="int8"
    )
    convert.add_argument("--force", action="store_true", help="overwrite OUT_DIR")
    existing = convert.add_mutually_exclusive_group()
    existing.add_argument(
        "--check-tokenizer",
        type=Path,
        metavar="MODEL_DIR",
        help="check a converted model's tokenizer.json against its tokenizer.model, id for id",
    )
    existing.add_argument(
        "--fix-tokenizer",
        type=Path,
        metavar="MODEL_DIR",
        help="rebuild a converted model's tokenizer.json from its tokenizer.model, checked",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``airoboros-bot`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"airoboros-bot: {exc.user_message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level if args.command != "chat" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    commands = {
        "chat": _chat,
        "worker": _worker,
        "prompt": _prompt,
        "discord": _discord,
        "slack": _slack,
        "convert": _convert,
    }
    try:
        return asyncio.run(commands[args.command](settings, args))
    except AiroborosError as exc:
        print(f"airoboros-bot: {exc.user_message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    runtime = await Runtime(settings, model_dir_override=args.model_dir).open()
    try:
        local = args.local_worker if args.local_worker is not None else not settings.redis.url
        if local:
            worker = await runtime.start_local_worker()
            engine_label = worker.generator.describe()
            is_demo = worker.generator.is_demo
        else:
            workers = await runtime.engine_client().live_workers()
            engine_label = f"{len(workers)} worker(s) at {runtime.redis_label}"
            is_demo = _is_demo(runtime)
        service = runtime.service()
        key = ConversationKey("terminal", socket.gethostname(), args.conversation)
        if args.no_history:
            await service.set_mode(key, Mode.NO_HISTORY)
        elif await service.get_mode(key) is Mode.NO_HISTORY:
            await service.set_mode(key, Mode.HISTORY)
        if is_demo:
            print(DEMO_BANNER, file=sys.stderr)
        print(f"Engine: {engine_label}.", file=sys.stderr)
        chat = TerminalChat(
            service,
            key,
            multiline=args.multiline,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            games=GameEngine(runtime.redis, runtime.keys, service, settings.games),
        )
        main = asyncio.current_task()
        assert main is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
        try:
            return await chat.run()
        except asyncio.CancelledError:  # SIGTERM: stop as Ctrl-D would, releasing the answer
            return 0
    finally:
        await runtime.close()


def _is_demo(runtime: Runtime) -> bool:
    return bool(read_manifest(runtime.model_dir()).get("demo"))


async def _worker(settings: Settings, args: argparse.Namespace) -> int:
    runtime = await Runtime(settings, model_dir_override=args.model_dir).open()
    try:
        if args.check:
            host = socket.gethostname()
            names = await runtime.engine_client().live_workers()
            alive = [n for n in names if n.startswith(f"{host}-") or n == args.name]
            print(f"{len(alive)} live worker(s) on {host}", file=sys.stderr)
            return 0 if alive else 1
        if runtime.embedded:
            log.warning(
                "no AIROBOROS_REDIS_URL set: serving the embedded Valkey at %s", runtime.redis_url
            )
        loop = asyncio.get_running_loop()
        indexes = settings.engine.device_index
        if len(indexes) > 1:
            stopping = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stopping.set)
            log.info("one worker process per device: %s", indexes)
            return await supervise(
                indexes, runtime.redis_url, stopping, metrics_port=settings.engine.metrics_port
            )
        generator = await asyncio.to_thread(runtime.generator)
        worker = runtime.worker(generator, name=args.name)
        if settings.engine.metrics_port:
            worker.metrics.serve(settings.engine.metrics_port)
            log.info("Prometheus metrics on :%d/metrics", settings.engine.metrics_port)

        def stop() -> None:  # finish or release the running answers, then exit
            worker.stop()
            if runtime.redis is not None:
                stop_retrying(runtime.redis)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        await worker.run()
        return 0
    finally:
        await runtime.close()


async def _discord(settings: Settings, args: argparse.Namespace) -> int:
    from airoboros_bot.bots.discord.client import run_discord

    token = settings.discord.token
    if token is None or not token.get_secret_value().strip():  # fail before loading the model
        print(
            "airoboros-bot: AIROBOROS_DISCORD_TOKEN is not set: put your bot's token from the "
            "Discord developer portal in it (see README, Discord).",
            file=sys.stderr,
        )
        return 2
    return await _run_bot(settings, args, run_discord)


async def _slack(settings: Settings, args: argparse.Namespace) -> int:
    from airoboros_bot.bots.slack.app import missing_settings, run_slack

    missing = missing_settings(settings.slack, args.http)  # fail before loading the model
    if missing:
        print(f"airoboros-bot: {missing}", file=sys.stderr)
        return 2
    return await _run_bot(settings, args, run_slack, http=args.http, port=args.port)


async def _run_bot(settings: Settings, args: argparse.Namespace, run, **options) -> int:
    """Open the runtime (and a local worker unless Redis is external), then run the bot."""
    runtime = await Runtime(settings, model_dir_override=args.model_dir).open()
    try:
        local = args.local_worker if args.local_worker is not None else not settings.redis.url
        if local:
            await runtime.start_local_worker()
        return await run(runtime, **options)
    finally:
        await runtime.close()


async def _convert(settings: Settings, args: argparse.Namespace) -> int:
    from airoboros_bot.engine.convert.converter import convert

    model_dir = args.check_tokenizer or args.fix_tokenizer
    if model_dir is not None or args.hf_dir is None or args.out_dir is None:
        if model_dir is None or args.hf_dir is not None:
            print(
                "airoboros-bot: convert takes HF_DIR OUT_DIR, or --check-tokenizer MODEL_DIR, "
                "or --fix-tokenizer MODEL_DIR",
                file=sys.stderr,
            )
            return 2
        return _recheck_tokenizer(model_dir, fix=args.fix_tokenizer is not None)

    # Blocking on purpose: nothing else runs in this loop, and Ctrl-C must reach the
    # conversion (a worker thread would keep converting, then move the result into place).
    convert(args.hf_dir, args.out_dir, quantization=args.quantization, force=args.force)
    return 0


def _recheck_tokenizer(model_dir: Path, *, fix: bool) -> int:
    from airoboros_bot.engine.convert.recheck import check_or_explain, fix_converted_tokenizer

    if fix:
        check = fix_converted_tokenizer(model_dir)
        print(
            f"{model_dir / 'tokenizer.json'} rebuilt from tokenizer.model: it gives "
            f"SentencePiece's ids for all {check.texts} check texts"
        )
    else:
        print(check_or_explain(model_dir))
    return 0


async def _prompt(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data = json.load(sys.stdin)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        turns = [Turn(t["user"], t["assistant"]) for t in data.get("turns", [])]
        blocks = [
            ContextBlock(
                text=b["text"], metadata={str(k): str(v) for k, v in b.get("metadata", {}).items()}
            )
            for b in data.get("context", [])
        ]
        instruction = data["instruction"]
        system = data.get("system", settings.chat.system_prompt)
    except (ValueError, KeyError, TypeError) as exc:
        raise ChatError(
            f"Bad conversation JSON on stdin ({exc}); see README: `airoboros-bot prompt`."
        ) from None
    model_dir = args.model_dir or settings.engine.model_dir
    runtime = Runtime(settings, model_dir_override=model_dir)
    count = runtime.tokenizer().count
    fitted = fit_prompt(
        system=system,
        history=turns,
        question=instruction,
        blocks=blocks,
        count_tokens=count,
        context_length=settings.engine.context_length,
        max_new_tokens=args.max_new_tokens or settings.engine.max_new_tokens,
    )
    sys.stdout.write(fitted.text)
    if args.tokens:
        sys.stdout.write("\n")
        print(
            f"prompt tokens: {fitted.prompt_tokens}; window: {settings.engine.context_length}; "
            f"budget left: {fitted.budget_left}; max new tokens: {fitted.max_new_tokens}; "
            f"dropped turns: {fitted.dropped_turns}; omitted blocks: {len(fitted.omitted_blocks)}",
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
