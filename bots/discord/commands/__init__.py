"""The bot's commands as discord.py cogs: each command is a decorated method, written once."""
