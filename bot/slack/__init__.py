"""Everything that knows Slack: the Bolt app and its HTTP / Socket Mode serving (app), the Web API
clients with their one retry configuration (client), Block Kit views as pure functions of core
data (views, home), the notifier, and every callback/action/block ID (ids). May import bot.flows,
bot.core and bot.config; handlers/ sits on top of it."""
