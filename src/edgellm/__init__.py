"""edgellm: benchmark collaborative LLM inference across edge nodes and the cloud."""

__version__ = "0.1.0"
