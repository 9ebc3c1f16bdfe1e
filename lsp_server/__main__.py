import sys

from lsp_server.main import main

sys.exit(main())
