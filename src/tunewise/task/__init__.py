"""The task: task.yaml's contract, data and settings, read and checked at the edge."""
