"""Protocol-true fakes of the platforms the bots talk to: Discord (`tests.fakes.discord`) and
Slack (`tests.fakes.slack`), served on 127.0.0.1 for the real discord.py and slack-bolt."""
