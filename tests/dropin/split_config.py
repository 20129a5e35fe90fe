# A config file split in two, as teams keep theirs (netbox's and InvenTree's import their
# settings): it imports the shared part by module path from the working directory, which
# gunicorn puts on sys.path before it reads the file.
from dropin.split_settings import *  # noqa: F403
