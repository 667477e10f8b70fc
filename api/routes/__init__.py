"""The API's routers, one module per area; `create_app` includes them in /docs order.

A command route is a few lines: its body is generated from the command (`api.schemas.bodies.body_of`),
and `Write` (api/commands.py) builds the command from path and body, runs it once per Idempotency-Key
and answers with the route's response model."""
