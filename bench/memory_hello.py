"""The web stack alone, for bench/memory.py's floor: gunicorn + Flask answering one route."""

from flask import Flask

app = Flask(__name__)


@app.get("/readyz")
def readyz() -> str:
    return "ok"
