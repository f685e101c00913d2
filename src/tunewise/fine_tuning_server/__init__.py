"""`tunewise fine-tuning-server`: the OpenAI fine-tuning API (files, fine-tuning jobs, models,
chat completions) served from tunewise's own trainer on the machine it runs on.

store.py keeps files, jobs, events and checkpoints in sqlite; files.py checks and keeps
uploads; training.py is the Trainer Protocol and tunewise's trainer behind it; worker.py trains
queued jobs one at a time; answering.py answers chat completions of the base and fine-tuned
models; jobs.py is the service the routes in app.py call; server.py builds and runs it.
"""
