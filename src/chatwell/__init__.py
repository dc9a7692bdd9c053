"""chatwell: self-hostable AI chatbots grounded in a business's own content.

Nothing happens at import time; build a server with :func:`chatwell.app.create_app`.
"""

__version__ = "0.1.0"
