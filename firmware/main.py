# Runs at boot on the strap: everything is in app.py.
import app

app.run()
