from diffill.cli import main

raise SystemExit(main())
