"""The agent side, what an agent author imports: the consumer helper (`agents.consumer`), the task client
(`agents.task_client`) and the development agent (`agents.dev_agent`). Imports the core (`genesis`) only."""
