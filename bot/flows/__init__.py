"""What oauth-bot does, as flows of named steps: intake (requests and decisions), the new-app and
rotation flows, secret issuance, and the lifecycle around them (inventory, expiry scan, grace
removals). Flows reach the database, Azure and Slack only through bot.core.ports; they import no
database, HTTP or Slack library."""
