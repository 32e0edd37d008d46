"""The class registry modules and metric scripts register with.

Under real Ianvs this *is* sedna's ``ClassFactory`` (so ``ianvs -f`` finds what
our example files register); without sedna it is our own class with the same
API. Only KubeEdge's sedna (shipped as a wheel inside the Ianvs source tree) is
accepted: the unrelated PyPI package of that name has no ``sedna.common``.
"""

try:  # pragma: no cover - exercised only where KubeEdge sedna is installed
    from sedna.common.class_factory import ClassFactory, ClassType
    SEDNA = True
except ImportError:
    SEDNA = False

    class ClassType:
        """Registry groups, spelled as sedna spells them."""

        GENERAL = "general"
        HEM = "hard_example_mining"
        CALLBACK = "post_process_callback"

    class ClassFactory:
        """sedna's ``ClassFactory`` API. As in sedna, a second registration of an
        alias silently replaces the first (last wins)."""

        __registry__ = {}

        @classmethod
        def register(cls, type_name=ClassType.GENERAL, alias=None):
            def wrapper(t_cls):
                return cls.register_cls(t_cls, type_name, alias)
            return wrapper

        @classmethod
        def register_cls(cls, t_cls, type_name=ClassType.GENERAL, alias=None):
            name = alias if alias is not None else t_cls.__name__
            cls.__registry__.setdefault(type_name, {})[name] = t_cls
            return t_cls

        @classmethod
        def is_exists(cls, type_name, cls_name=None):
            if cls_name is None:
                return type_name in cls.__registry__
            return cls_name in cls.__registry__.get(type_name, {})

        @classmethod
        def get_cls(cls, type_name, t_cls_name=None):
            if t_cls_name is None or not cls.is_exists(type_name, t_cls_name):
                raise ValueError(f"can't find class type {type_name} class name "
                                 f"{t_cls_name} in class registry")
            return cls.__registry__[type_name][t_cls_name]


def registered_names(type_name):
    """Aliases registered under ``type_name``, for error messages."""
    return sorted(ClassFactory.__registry__.get(type_name, {}))


__all__ = ["ClassFactory", "ClassType", "SEDNA", "registered_names"]
