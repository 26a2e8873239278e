from deepul_helpers.cli import main

raise SystemExit(main())
