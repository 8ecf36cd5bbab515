"""Stand-in for get-pip.py, which ansible-test downloads from a host this network cannot reach.

ansible-test runs its cached copy (~/.ansible/test/cache/get_pip_<version>.py) inside each fresh
virtual environment with pip's install arguments (pip==<version> and flags). This does the same job
with what Python ships: ensurepip, then pip installs the requested pip from the package index.
"""
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install"] + [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY])
